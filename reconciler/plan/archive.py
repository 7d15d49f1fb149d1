"""Which phases move out of ``dispatch/state.json`` and which come back (``model.archive``).

Pure: the engine reads and writes the archive files; these functions only decide.

- ``to_restore``: an archived phase comes back when its specs (or the policies) no longer give
  its digest, when a decision not yet carried out names one of its experiments, or when an entry
  of it is live in ``dispatch/state.json`` again (a pass that died between writing the archive
  file and the state file).
- ``live_desired``: the planner sees the specs of the live phases only (an archived phase is
  history: nothing in the spec could change its entries).
- ``archive``: a phase all of whose experiments ended at least ``archive_after_hours`` ago, with
  no open escalation and no decision left to carry out about it, is moved out.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone

from reconciler.model.archive import ArchivedPhase, StageCount, spec_digest
from reconciler.model.desired import DesiredState
from reconciler.model.spec import DesiredRunState, ExperimentSpec
from reconciler.model.status import StateFile, Status, StatusEntry
from reconciler.plan.context import iso, parse_iso

_SETTLED = (Status.DONE, Status.CANCELLED)
_STOPPED = (Status.FAILED, Status.ON_HOLD)


def _pending_decisions(desired: DesiredState, state: StateFile) -> list[str]:
    applied = set(state.decisions_applied)
    return [d.exp for d in desired.decisions if d.id not in applied and d.exp]


def to_restore(desired: DesiredState, state: StateFile, digests: Mapping[str, str] | None = None) -> dict[str, str]:
    """The archived phases this pass needs back, each with why (``digests``: each phase's
    ``spec_digest``, when already known)."""
    if not state.archived:
        return {}
    names = {a.phase for a in state.archived}
    specs: dict[str, list[ExperimentSpec]] = defaultdict(list)
    for spec in desired.experiments if digests is None else ():
        if spec.phase in names:
            specs[spec.phase].append(spec)
    out: dict[str, str] = {}
    for entry in state.entries:
        if entry.phase in names:
            out[entry.phase] = f"{entry.id} of it is in dispatch/state.json too"
    policies = desired.config.policies
    for record in state.archived:
        if record.phase in out:
            continue
        if digests is not None:
            now = digests.get(record.phase) or spec_digest((), policies)
        else:
            now = spec_digest(specs.get(record.phase, ()), policies)
        if now != record.digest:
            out[record.phase] = "its specs or the policies changed"
    live = {e.id for e in state.entries}
    phase_of = {s.id: s.phase for s in desired.experiments}
    for exp in _pending_decisions(desired, state):
        phase = phase_of.get(exp)
        if exp not in live and phase in names and phase not in out:
            out[phase] = f"a decision names {exp}"
    return dict(sorted(out.items()))


def unplaced_decisions(desired: DesiredState, state: StateFile) -> set[str]:
    """Experiments named by a decision not yet carried out that are neither in
    ``dispatch/state.json`` nor in the spec: only an archive file can say which phase holds them."""
    if not state.archived:
        return set()
    live = {e.id for e in state.entries}
    specs = {s.id for s in desired.experiments}
    return {exp for exp in _pending_decisions(desired, state) if exp not in live and exp not in specs}


def restored(state: StateFile, archives: Mapping[str, Iterable[StatusEntry]]) -> StateFile:
    """``state`` with the entries of the phases in ``archives`` back (an entry already live wins)."""
    if not archives:
        return state
    entries = state.by_id()
    for phase_entries in archives.values():
        for entry in phase_entries:
            entries.setdefault(entry.id, entry)
    kept = tuple(a for a in state.archived if a.phase not in archives)
    return dataclasses.replace(state.with_entries(entries), archived=kept)


def live_desired(desired: DesiredState, state: StateFile) -> DesiredState:
    """``desired`` without the specs of the archived phases."""
    if not state.archived:
        return desired
    names = {a.phase for a in state.archived}
    return dataclasses.replace(desired, experiments=tuple(s for s in desired.experiments if s.phase not in names))


def archive(state: StateFile, desired: DesiredState, now: datetime) -> tuple[StateFile, dict[str, StateFile]]:
    """``state`` without the phases that may be archived now, and each of those as its own state
    file (what ``dispatch/archive/<phase>.json`` holds)."""
    after = desired.config.policies.archive_after_hours
    if after is None:
        return state, {}
    cutoff = now - timedelta(hours=after)
    by_phase: dict[str, list[StatusEntry]] = defaultdict(list)
    for entry in state.entries:
        if entry.phase:
            by_phase[entry.phase].append(entry)
    named = set(_pending_decisions(desired, state))
    ripe = [
        phase
        for phase, members in sorted(by_phase.items())
        if all(_ended_before(e, cutoff) and e.id not in named for e in members)
    ]
    if not ripe:
        return state, {}
    specs: dict[str, list[ExperimentSpec]] = defaultdict(list)
    wanted = set(ripe)
    for spec in desired.experiments:
        if spec.phase in wanted:
            specs[spec.phase].append(spec)
    moved: dict[str, StateFile] = {}
    records = {a.phase: a for a in state.archived}
    for phase in ripe:
        members = by_phase[phase]
        records[phase] = _record(phase, members, specs.get(phase, []), desired, iso(now))
        moved[phase] = StateFile(project=state.project, entries=tuple(members), updated=iso(now))
    left = tuple(e for e in state.entries if e.phase not in wanted)
    out = dataclasses.replace(state, entries=left, archived=tuple(records[p] for p in sorted(records)))
    return out, moved


def _ended_before(entry: StatusEntry, cutoff: datetime) -> bool:
    if not entry.status.final or (entry.escalation is not None and entry.escalation.open):
        return False
    current = entry.current
    ended = parse_iso(entry.finished or (current.finished if current is not None else None))
    if ended is None:
        return current is None  # never ran (cancelled before a launch): nothing to wait for
    return (ended if ended.tzinfo else ended.replace(tzinfo=timezone.utc)) <= cutoff


def _record(
    phase: str, members: list[StatusEntry], specs: list[ExperimentSpec], desired: DesiredState, now: str
) -> ArchivedPhase:
    status = {e.id: e.status for e in members}
    stages: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for spec in specs:
        if spec.state is DesiredRunState.CANCELLED or spec.id not in status:
            continue
        counts = stages[spec.stage]
        counts[0] += 1
        counts[1] += status[spec.id] in _SETTLED
        counts[2] += status[spec.id] in _STOPPED
    return ArchivedPhase(
        phase=phase,
        experiments=len(members),
        counts=tuple(sorted(Counter(e.status.value for e in members).items())),
        stages=tuple(StageCount(k, *v) for k, v in sorted(stages.items())),
        digest=spec_digest(specs, desired.config.policies),
        archived_at=now,
    )
