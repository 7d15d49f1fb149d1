"""Environment verdicts: ``progress/env_<TARGET>.json``, written by the reconciler after it checked
that a target can run this project's code (the seed's ENV_READY / ENV_FAILED, with evidence)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from reconciler.model.config import Target

ENV_READY = "ENV_READY"
ENV_FAILED = "ENV_FAILED"


@dataclass(frozen=True)
class EnvVerdict:
    target: str
    status: str
    """``ENV_READY`` or ``ENV_FAILED``."""
    checked_commit: str
    checked_at: str
    env_hash: str
    """Hash of the target's environment settings when checked: a change makes the verdict stale."""
    host: str | None = None
    python: str | None = None
    available_gpus: tuple[int, ...] = ()
    dry_run_passed: bool = False
    dry_run_command: str | None = None
    evidence: tuple[str, ...] = ()
    """The failing step's last output lines."""
    notes: str = ""
    remote_project_dir: str | None = None
    free_disk_gb: float | None = None

    @property
    def ready(self) -> bool:
        return self.status == ENV_READY

    def fresh(self, commit: str, env_hash: str, now: datetime, ttl_hours: float) -> bool:
        """Still valid for this commit and environment, and younger than ``ttl_hours``."""
        if self.checked_commit != commit or self.env_hash != env_hash:
            return False
        try:
            when = datetime.fromisoformat(self.checked_at)
        except ValueError:
            return False
        return now - when < timedelta(hours=ttl_hours)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["available_gpus"] = list(self.available_gpus)
        d["evidence"] = list(self.evidence)
        return d

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EnvVerdict:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["available_gpus"] = tuple(int(g) for g in d.get("available_gpus") or () if isinstance(g, int))
        kw["evidence"] = tuple(str(x) for x in d.get("evidence") or ())
        kw.setdefault("target", "")
        kw.setdefault("checked_commit", "")
        kw.setdefault("checked_at", "")
        kw.setdefault("env_hash", "")
        return cls(**kw)


def env_hash(target: Target, check_command: str | None = None) -> str:
    """What about a target's settings (and its ``env_check.command``) makes an earlier
    environment check meaningless."""
    doc: dict[str, object] = {"env": dataclasses.asdict(target.env), "python": target.python, "root": target.root}
    if check_command:
        doc["check"] = check_command
    blob = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
