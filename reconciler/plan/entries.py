"""Keep each status entry's descriptive fields in step with its spec.

A new spec gets a ``pending`` entry. A changed spec updates the descriptive fields at once; the
command of an entry that has no live attempt follows the spec too, but a running experiment keeps
its command and is marked out of sync (it is restarted only when the policy says so).
"""

from __future__ import annotations

from reconciler.model.config import Policies
from reconciler.model.spec import ExperimentSpec
from reconciler.model.status import Condition, Status, StatusEntry
from reconciler.plan.context import Context, iso


def new_entry(spec: ExperimentSpec, policies: Policies) -> StatusEntry:
    return sync(StatusEntry(id=spec.id, status=Status.PENDING), spec, policies, now_iso="")


def sync(entry: StatusEntry, spec: ExperimentSpec, policies: Policies, now_iso: str) -> StatusEntry:
    """The entry with its descriptive fields taken from ``spec``."""
    if entry.condition("Orphaned") or entry.condition("Archived"):  # back in the spec
        entry = entry.replace(conditions=tuple(c for c in entry.conditions if c.type not in ("Archived", "Orphaned")))
    elif _in_step(entry, spec, policies):  # the usual case, every pass: nothing to copy
        return entry
    changes: dict[str, object] = {
        "phase": spec.phase,
        "group": spec.group.value,
        "method": spec.method,
        "dataset": spec.dataset,
        "seed": spec.seed,
        "stage": spec.stage,
        "priority": spec.priority,
        "result_file": spec.result_path,
        "max_retries": spec.max_retries if spec.max_retries is not None else policies.max_retries,
        "experiment_id": spec.base_id,
    }
    if spec.expected_duration_hours is not None:
        changes["expected_duration_hours"] = spec.expected_duration_hours
        changes["duration_basis"] = "spec"
    elif entry.duration_basis == "spec":
        changes["expected_duration_hours"] = None
        changes["duration_basis"] = None
    spec_changed = entry.spec_hash != spec.spec_hash
    if spec_changed:
        if entry.status.active:
            changes["conditions"] = _set_condition(
                entry,
                Condition(
                    "OutOfSync",
                    True,
                    "SpecChanged",
                    "the spec changed while the run was active; it keeps its command",
                    now_iso,
                ),
            )
        else:
            changes["command"] = spec.command
            changes["spec_hash"] = spec.spec_hash
            changes["conditions"] = tuple(c for c in entry.conditions if c.type != "OutOfSync")
    changed = {k: v for k, v in changes.items() if getattr(entry, k) != v}
    return entry.replace(**changed) if changed else entry


def _in_step(entry: StatusEntry, spec: ExperimentSpec, policies: Policies) -> bool:
    """``sync`` would change nothing (the same comparisons, without building the changes)."""
    if entry.spec_hash != spec.spec_hash:
        return False
    if spec.expected_duration_hours is not None:
        duration = (spec.expected_duration_hours, "spec")
        if (entry.expected_duration_hours, entry.duration_basis) != duration:
            return False
    elif entry.duration_basis == "spec":
        return False
    max_retries = spec.max_retries if spec.max_retries is not None else policies.max_retries
    return (
        entry.phase == spec.phase
        and entry.group == spec.group  # a str enum: equal to its value, without the enum descriptor
        and entry.method == spec.method
        and entry.dataset == spec.dataset
        and entry.seed == spec.seed
        and entry.stage == spec.stage
        and entry.priority == spec.priority
        and entry.result_file == spec.result_path
        and entry.max_retries == max_retries
        and entry.experiment_id == spec.base_id
    )


def resync_after_attempt(entry: StatusEntry, spec: ExperimentSpec | None) -> StatusEntry:
    """When an out-of-sync run ends, the next attempt takes the new spec's command."""
    if spec is None or entry.spec_hash == spec.spec_hash:
        return entry
    return entry.replace(
        command=spec.command,
        spec_hash=spec.spec_hash,
        conditions=tuple(c for c in entry.conditions if c.type != "OutOfSync"),
    )


def _set_condition(entry: StatusEntry, cond: Condition) -> tuple[Condition, ...]:
    old = entry.condition(cond.type)
    if old is not None and (old.status, old.reason) == (cond.status, cond.reason):
        return entry.conditions
    rest = tuple(c for c in entry.conditions if c.type != cond.type)
    return tuple(sorted((*rest, cond), key=lambda c: c.type))


def set_condition(entry: StatusEntry, type_: str, reason: str, message: str, ctx: Context) -> StatusEntry:
    return entry.replace(conditions=_set_condition(entry, Condition(type_, True, reason, message, iso(ctx.now))))


def clear_condition(entry: StatusEntry, type_: str) -> StatusEntry:
    if entry.condition(type_) is None:
        return entry
    return entry.replace(conditions=tuple(c for c in entry.conditions if c.type != type_))


def mark_orphan(entry: StatusEntry, phases: set[str], ctx: Context) -> StatusEntry:
    """An entry whose experiment left the spec is kept, never deleted, and marked: ``Archived``
    when its phase is over (no spec of that phase remains), else ``Orphaned``. A live run of it is
    still observed to its end (and killed only when ``prune`` is on); it is never relaunched."""
    if entry.phase and entry.phase not in phases:
        mark = ("Archived", "PhaseEnded", f"phase {entry.phase!r} has no experiment in the spec any more")
    else:
        mark = ("Orphaned", "RemovedFromSpec", "the experiment is no longer in the spec")
    existing = entry.condition(mark[0])
    if existing is not None:
        return entry
    others = tuple(c for c in entry.conditions if c.type not in ("Archived", "Orphaned"))
    cond = Condition(mark[0], True, mark[1], mark[2], ctx.now_iso)
    return entry.replace(conditions=tuple(sorted((*others, cond), key=lambda c: c.type)))
