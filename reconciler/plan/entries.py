"""Keep each status entry's descriptive fields in step with its spec.

A new spec gets a ``pending`` entry. A changed spec updates the descriptive fields at once. The
``command``, ``result_file`` and ``spec_hash`` of an entry are those of its newest attempt (what ran, or runs): they
follow the spec only while the entry is ``pending`` (its next attempt will run them). Any other
entry (running, on hold, done, failed, cancelled) keeps them and is marked ``OutOfSync`` until a
new attempt runs the new spec: a running one is restarted only when ``on_change: restart`` says
so, a finished one only by a ``retry`` decision (design invariant 9: never written over history).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from reconciler.model.config import Policies
from reconciler.model.fastdc import build
from reconciler.model.spec import ExperimentSpec
from reconciler.model.status import Condition, Status, StatusEntry
from reconciler.plan.context import Context, iso


def new_entry(spec: ExperimentSpec, policies: Policies) -> StatusEntry:
    """``sync(StatusEntry(id=spec.id), spec, policies, "")`` built at once (every experiment of a
    first pass: one construction instead of four)."""
    kw: dict[str, Any] = {
        "id": spec.id,
        "status": Status.PENDING,
        "command": spec.command,
        "phase": spec.phase,
        "group": spec.group.value,
        "method": spec.method,
        "dataset": spec.dataset,
        "seed": spec.seed,
        "stage": spec.stage,
        "priority": spec.priority,
        "max_retries": spec.max_retries if spec.max_retries is not None else policies.max_retries,
        "result_file": spec.result_path,
        "experiment_id": spec.base_id,
        "description": spec.description,
        "spec_hash": spec.spec_hash,
    }
    if spec.expected_duration_hours is not None:
        kw["expected_duration_hours"] = spec.expected_duration_hours
        kw["duration_basis"] = "spec"
    return build(StatusEntry, kw)


def sync(entry: StatusEntry, spec: ExperimentSpec, policies: Policies, now_iso: str) -> StatusEntry:
    """The entry with its descriptive fields taken from ``spec``."""
    if entry.conditions and (entry.condition("Orphaned") or entry.condition("Archived")):  # back in the spec
        entry = dataclasses.replace(
            entry, conditions=tuple(c for c in entry.conditions if c.type not in ("Archived", "Orphaned"))
        )
    elif _in_step(entry, spec, policies):  # the usual case, every pass: nothing to copy
        return entry
    synced = dataclasses.replace(
        entry,
        phase=spec.phase,
        group=spec.group.value,
        method=spec.method,
        dataset=spec.dataset,
        seed=spec.seed,
        stage=spec.stage,
        priority=spec.priority,
        max_retries=spec.max_retries if spec.max_retries is not None else policies.max_retries,
        experiment_id=spec.base_id,
        description=spec.description,
    )
    if spec.expected_duration_hours is not None:
        synced = dataclasses.replace(
            synced, expected_duration_hours=spec.expected_duration_hours, duration_basis="spec"
        )
    elif entry.duration_basis == "spec":
        synced = dataclasses.replace(synced, expected_duration_hours=None, duration_basis=None)
    if entry.spec_hash != spec.spec_hash:
        if entry.status is Status.PENDING:  # the next attempt runs the new spec
            synced = dataclasses.replace(
                synced,
                command=spec.command,
                result_file=spec.result_path,
                spec_hash=spec.spec_hash,
                conditions=tuple(c for c in entry.conditions if c.type != "OutOfSync"),
            )
        elif entry.spec_hash is None:  # recorded before hashes (an imported seed state): adopt the spec
            synced = dataclasses.replace(
                synced,
                spec_hash=spec.spec_hash,
                command=entry.command or spec.command,
                result_file=entry.result_file or spec.result_path,
            )
        else:  # command and spec_hash stay what ran (provenance); the new spec waits
            synced = dataclasses.replace(synced, conditions=_set_condition(entry, _out_of_sync(entry, now_iso)))
    return entry if synced == entry else synced


def _out_of_sync(entry: StatusEntry, now_iso: str) -> Condition:
    """The spec changed after the entry's attempt was launched. One message for every status, so
    the condition does not change (nor commit) when the run goes on to end."""
    message = (
        f"the spec changed after attempt {entry.attempt} was launched: command and spec_hash stay those "
        "of that attempt; the new spec runs on the next attempt (a retry, a restart by on_change: restart, "
        "or a retry decision)"
    )
    return Condition("OutOfSync", True, "SpecChanged", message, now_iso)


def _in_step(entry: StatusEntry, spec: ExperimentSpec, policies: Policies) -> bool:
    """``sync`` would change nothing (the same comparisons, without building the changes)."""
    if entry.spec_hash != spec.spec_hash:
        return False
    hours = spec.expected_duration_hours
    if hours is not None:
        recorded = entry.expected_duration_hours  # compared as a tuple would (identity first)
        if (recorded is not hours and recorded != hours) or entry.duration_basis != "spec":
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
        and entry.description == spec.description
    )


def resync_after_attempt(entry: StatusEntry, spec: ExperimentSpec | None) -> StatusEntry:
    """When an out-of-sync run ends, the next attempt takes the new spec's command."""
    if spec is None or entry.spec_hash == spec.spec_hash:
        return entry
    return dataclasses.replace(
        entry,
        command=spec.command,
        result_file=spec.result_path,
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
    return dataclasses.replace(
        entry, conditions=_set_condition(entry, Condition(type_, True, reason, message, iso(ctx.now)))
    )


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
    return dataclasses.replace(entry, conditions=tuple(sorted((*others, cond), key=lambda c: c.type)))
