"""The completeness guard of ``reconcile export`` (pure): which runs keep the export from being
complete, by kind.

Every experiment of the desired state counts, except those the spec cancels (``state:
cancelled``); an entry the reconciler cancelled (early stop, a decision) is complete. The kinds:

    held        on_hold or unreachable: a person (or the target) has to act first
    failed      failed for good (retries used up, or a decision)
    unfinished  pending, queued or running: wait for the loop
    missing     done but its result file is missing or invalid, or lacks a metric the spec
                declares (``metrics:``); a design cell that names no experiment

The seed's guard looked only at ``phase in ("8", "Phase 8")`` (string match) and let ``on_hold``
block synthesis forever without saying which runs; this one lists every offender with its reason,
and ``--allow-partial`` exports what there is (the outputs say what is missing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.model.desired import DesiredState
from reconciler.model.spec import DesiredRunState
from reconciler.model.status import StateFile, Status

KINDS = ("held", "failed", "unfinished", "missing")


@dataclass(frozen=True)
class Offender:
    exp_id: str
    kind: str
    reason: str


@dataclass(frozen=True)
class Completeness:
    offenders: tuple[Offender, ...] = field(default_factory=tuple)
    expected: int = 0
    """Experiments (one per seed) the export expects."""

    @property
    def complete(self) -> bool:
        return not self.offenders

    def of_kind(self, kind: str) -> tuple[Offender, ...]:
        return tuple(o for o in self.offenders if o.kind == kind)

    def summary(self) -> str:
        if self.complete:
            return f"complete: {self.expected} experiments"
        parts = [f"{len(self.of_kind(k))} {k}" for k in KINDS if self.of_kind(k)]
        return f"incomplete: {', '.join(parts)} of {self.expected} experiments"

    def lines(self) -> list[str]:
        return [f"{o.kind:<10} {o.exp_id}: {o.reason}" for o in self.offenders]

    def to_json(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "expected": self.expected,
            **{k: [{"exp_id": o.exp_id, "reason": o.reason} for o in self.of_kind(k)] for k in KINDS},
        }


def completeness(
    desired: DesiredState,
    state: StateFile,
    rows: Mapping[str, Sequence[Mapping[str, str]]],
    problems: Mapping[str, str],
) -> Completeness:
    """What is missing for a complete export; ``rows``/``problems`` from ``read_result_rows``."""
    entries = state.by_id()
    found: list[Offender] = []
    expected = 0
    for spec in desired.experiments:
        if spec.state is DesiredRunState.CANCELLED:
            continue
        expected += 1
        entry = entries.get(spec.id)
        status = entry.status if entry is not None else Status.PENDING
        why = _why(entry.escalation.reason if entry and entry.escalation else "", entry.notes if entry else "")
        if status in (Status.ON_HOLD, Status.UNREACHABLE):
            found.append(Offender(spec.id, "held", status.value + why))
        elif status is Status.FAILED:
            found.append(Offender(spec.id, "failed", ((entry.failure_class if entry else None) or "failed") + why))
        elif status in (Status.PENDING, Status.QUEUED, Status.RUNNING):
            found.append(Offender(spec.id, "unfinished", status.value if entry else "not started"))
        elif status is Status.DONE:
            if spec.id in problems:
                found.append(Offender(spec.id, "missing", problems[spec.id]))
            elif spec.id not in rows:
                found.append(Offender(spec.id, "missing", "no result rows"))
            else:
                have = {(r.get("metric") or "") for r in rows[spec.id]}
                lacking = [m for m in spec.metrics if m not in have]
                if lacking:
                    found.append(Offender(spec.id, "missing", f"no rows for metric {', '.join(lacking)}"))
    ids = set(desired.by_id()) | set(entries)
    for table in desired.designs:
        for cell in table.cells:
            if not cell.exp_id:
                found.append(Offender(f"{table.name}[{cell.row},{cell.col}]", "missing", "design cell has no exp_id"))
            elif cell.exp_id not in ids and not any(i.startswith(cell.exp_id + "_s") for i in ids):
                found.append(Offender(cell.exp_id, "missing", f"named by {table.name} but never dispatched"))
    order = {k: i for i, k in enumerate(KINDS)}
    return Completeness(tuple(sorted(found, key=lambda o: (order[o.kind], o.exp_id))), expected)


def _why(escalation: str, notes: str) -> str:
    text = escalation or (notes.strip().splitlines()[-1] if notes.strip() else "")
    return f" ({text})" if text else ""
