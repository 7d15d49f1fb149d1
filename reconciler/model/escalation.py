"""Escalations: a problem that needs a person, recorded on the status entry and rendered as
``progress/escalate_<EXP_ID>.md``. One per open problem: a problem already escalated is not
escalated again pass after pass; a decision closes it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPEN = "open"
CLOSED = "closed"


@dataclass(frozen=True)
class Escalation:
    reason: str
    """One line: what happened (``cuda_oom on attempt 4 of 4``, ``target unreachable for 3 probes``)."""
    created: str
    needed: str
    """The decision that would unblock it, in words a person acts on."""
    kind: str = "failed"
    """``failed``, ``on_hold``, ``timeout`` or ``stage``: what raised it."""
    failure_class: str | None = None
    evidence: tuple[str, ...] = ()
    status: str = OPEN
    resolution: str | None = None
    closed: str | None = None

    @property
    def open(self) -> bool:
        return self.status == OPEN

    def close(self, resolution: str, when: str) -> Escalation:
        return dataclasses.replace(self, status=CLOSED, resolution=resolution, closed=when)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["evidence"] = list(self.evidence)
        return d

    @classmethod
    def from_value(cls, value: object) -> Escalation | None:
        """Read the state file's field (an older file may hold a bare path: no details, dropped)."""
        if not isinstance(value, Mapping):
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in value.items() if k in names}
        kw["evidence"] = tuple(str(x) for x in value.get("evidence") or ())
        kw.setdefault("reason", "")
        kw.setdefault("created", "")
        kw.setdefault("needed", "")
        return cls(**kw)


def escalation_path(exp_id: str) -> str:
    return f"progress/escalate_{exp_id}.md"
