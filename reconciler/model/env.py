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
class RepairStep:
    """One command of the repair ladder as it ran on the target."""

    command: str
    exit_code: int
    """124: it ran over the ladder's ``timeout_seconds``."""
    seconds: float
    output: tuple[str, ...] = ()
    """Its last lines (stdout and stderr merged)."""


@dataclass(frozen=True)
class RepairRecord:
    """The repair ladder run for one commit and environment settings (``env.repair``): why it
    ran, each command's outcome, and whether the check passed after it. It runs once per commit
    and ``env_hash``: a later check of the same commit carries this record and repairs nothing."""

    commit: str
    env_hash: str
    at: str
    reason: str
    """The failing check's reason that started the ladder."""
    steps: tuple[RepairStep, ...] = ()
    ready: bool = False
    """The check passed after the ladder."""

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["steps"] = [{**dataclasses.asdict(step), "output": list(step.output)} for step in self.steps]
        return d

    @classmethod
    def from_value(cls, value: object) -> RepairRecord | None:
        """``None`` for anything not of the shape ``to_dict`` writes."""
        if not isinstance(value, Mapping):
            return None
        texts = [value.get(k) for k in ("commit", "env_hash", "at", "reason")]
        steps = value.get("steps")
        if not all(isinstance(t, str) for t in texts) or not isinstance(steps, list):
            return None
        built = []
        for step in steps:
            if not isinstance(step, Mapping):
                return None
            command, code, secs = step.get("command"), step.get("exit_code"), step.get("seconds")
            if not isinstance(command, str) or not isinstance(code, int) or not isinstance(secs, (int, float)):
                return None
            built.append(RepairStep(command, code, float(secs), tuple(str(x) for x in step.get("output") or ())))
        commit, hash_, at, reason = (str(t) for t in texts)
        return cls(commit, hash_, at, reason, tuple(built), value.get("ready") is True)


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
    repair: RepairRecord | None = None
    """The repair ladder run for this commit and environment settings, if one ran."""

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
        d["repair"] = self.repair.to_dict() if self.repair is not None else None
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
        kw["repair"] = RepairRecord.from_value(d.get("repair"))
        return cls(**kw)

    def repair_summary(self) -> str:
        """``; repair ladder at <commit> (<why>): 2 command(s) ran; fixed it``, when one ran."""
        r = self.repair
        if r is None:
            return ""
        ok = sum(1 for step in r.steps if step.exit_code == 0)
        failed = next((step for step in r.steps if step.exit_code != 0), None)
        what = f"{ok} command(s) ran" + (f", `{failed.command[:80]}` exited {failed.exit_code}" if failed else "")
        outcome = "fixed it" if r.ready else f"still failing: fix it by hand (progress/env_{self.target}.json)"
        return f"; repair ladder at {r.commit[:10]} ({r.reason[:120]}): {what}; {outcome}"

    def repaired(self, commit: str, env_hash: str) -> RepairRecord | None:
        """The repair that ran for this commit and environment settings (none runs again)."""
        r = self.repair
        return r if r is not None and r.commit == commit and r.env_hash == env_hash else None


def env_hash(target: Target, check_command: str | None = None) -> str:
    """What about a target's settings (and its ``env_check.command``) makes an earlier
    environment check meaningless."""
    doc: dict[str, object] = {"env": dataclasses.asdict(target.env), "python": target.python, "root": target.root}
    if check_command:
        doc["check"] = check_command
    blob = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
