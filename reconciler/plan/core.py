"""The planner: a pure function ``(desired, recorded, observed, now) -> Plan``.

No I/O, no clock, no git: everything it knows comes in as arguments. Order of the work:
decisions first, then every experiment's facts (adopt, collect, fail, go silent), then
placement of the pending ones in (stage, priority, id) order, then code shipping for the targets
that get launches. The plan sorts by (target, kind, id); the same inputs give the same plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from reconciler.model.actions import Action, Launch, Record, ShipCode, sort_key
from reconciler.model.desired import DesiredState
from reconciler.model.env import EnvVerdict
from reconciler.model.escalation import Escalation
from reconciler.model.ids import code_dir, launch_token, run_dir
from reconciler.model.observed import ObservedState
from reconciler.model.spec import DesiredRunState, ExperimentSpec
from reconciler.model.status import Attempt, StateFile, Status, StatusEntry
from reconciler.model.vram import PROBE_NEEDED, Measurement, VramBook
from reconciler.plan import outcomes
from reconciler.plan.active import checkpoint_path, decide_active
from reconciler.plan.adopt import adopt, complete
from reconciler.plan.context import Context, parse_iso
from reconciler.plan.decisions import apply_decisions
from reconciler.plan.duration import Pilots, estimate
from reconciler.plan.earlystop import Results, apply_early_stop
from reconciler.plan.entries import mark_orphan, new_entry, sync
from reconciler.plan.envcheck import check_env_action, env_escalation
from reconciler.plan.events import describe
from reconciler.plan.gates import Gates
from reconciler.plan.launchenv import launch_env, render_command
from reconciler.plan.leases import count_leases, lease_request
from reconciler.plan.leftover import stop_leftovers
from reconciler.plan.place import Placement, count_active, count_unrecorded, env_state, place
from reconciler.plan.tidy import tidy_actions
from reconciler.plan.vram import learned, with_estimates


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    state: StateFile
    """The recorded state with every ``Record`` of this plan applied (I/O results come on top)."""
    recorded: StateFile
    learned: tuple[Measurement, ...] = ()
    """Peaks of live runs over their reservations, for ``experiments/vram.json`` (``plan.vram``)."""

    @property
    def io_actions(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if not isinstance(a, Record))

    @property
    def empty(self) -> bool:
        return not self.actions and self.state.same_content(self.recorded)


def make_plan(
    desired: DesiredState,
    recorded: StateFile,
    observed: ObservedState,
    now: datetime,
    inflight: Iterable[tuple[str, int, str]] = (),
    env: Mapping[str, EnvVerdict] | None = None,
    results: Results | None = None,
    vram: VramBook | None = None,
) -> Plan:
    """``results`` (exp_id -> metric -> mean value of each done run) turns on early stop;
    ``vram`` (``experiments/vram.json``) gives measured VRAM estimates (``model.vram``)."""
    desired, estimates = with_estimates(desired, vram)
    ctx = Context(desired, recorded, observed, now, frozenset(inflight), dict(env or {}), vram=estimates)
    old = recorded.by_id()
    entries = dict(old)
    policies, now_iso, specs = ctx.policies, ctx.now_iso, ctx.specs
    # Each entry's descriptive fields follow its spec (``sync``): in the loop over the entries
    # below (one pass over them), unless a decision is still to be carried out (decisions read
    # the entries first) or a spec id is repeated (each spec of it syncs in turn).
    applied_before = set(recorded.decisions_applied)
    late_sync = len(specs) == len(desired.experiments) and all(d.id in applied_before for d in desired.decisions)
    for spec in desired.experiments:
        if late_sync:
            if spec.id not in entries:
                entries[spec.id] = new_entry(spec, policies)
            continue
        entry = entries.get(spec.id) or new_entry(spec, policies)
        entries[spec.id] = sync(entry, spec, policies, now_iso)
    if len(entries) > len(ctx.specs):  # some entry's experiment left the spec
        phases = {spec.phase for spec in desired.experiments}
        for exp_id, entry in entries.items():
            if exp_id not in ctx.specs:
                entries[exp_id] = mark_orphan(entry, phases, ctx)
    applied, stages, actions = apply_decisions(entries, ctx)
    killing = {a.exp_id for a in actions}

    candidates: list[ExperimentSpec] = []
    order = sorted(entries)  # every id (no entry is added from here on; each is keyed by its id)
    # Every live run of ours holds its slots and memory before any placement (``_Holds``), counted
    # in the entries' order. That is the order of this loop unless an experiment is new to the
    # spec (or the recorded state was not sorted): then they are counted after it. What they
    # count (status, current attempt, gpu_memory) does not change after this loop, and nothing
    # before the placements reads the counts.
    holds = _Holds(ctx)
    in_order = order == list(entries)
    for exp_id in order:
        if exp_id in killing:
            if in_order:
                holds.note(exp_id, entries[exp_id])
            continue
        entry = entries[exp_id]
        if late_sync and exp_id in old and (synced_to := specs.get(exp_id)) is not None:  # a new one is in step
            entry = sync(entry, synced_to, policies, now_iso)
        status = entry.status
        if status is _PENDING:
            entry = adopt(entry, ctx)
            status = entry.status
        current, seen = entry.current, entry
        if current is not None and (status in _ACTIVE or (status is _ON_HOLD and current.finished is None)):
            if not current.run_dir:  # else nothing to complete
                entry = complete(entry, ctx)
                current = entry.current
            entry, io = decide_active(entry, ctx, current)
            if io:
                actions.extend(io)
        entries[exp_id] = entry
        if entry.status is _PENDING:
            entry, stop = stop_leftovers(entry, ctx)
            if stop is not None:  # the retry waits for a pass that sees the old group empty
                entries[exp_id] = entry
                actions.append(stop)
            else:
                entry, candidate = _pending(entry, ctx)
                entries[exp_id] = entry
                if candidate is not None:
                    candidates.append(candidate)
        if in_order:
            holds.note(exp_id, entry, current if entry is seen else entry.current)

    # early stop (earlystop.py): a trailing method's pending runs are cancelled, not placed
    candidates = apply_early_stop(candidates, entries, results, ctx.now)

    _phase_guard(entries, ctx)
    if not in_order:
        for exp_id, entry in entries.items():
            holds.note(exp_id, entry)
    counted, done, on_gpu = holds.counted, holds.done, holds.on_gpu
    # ... and so does every run of ours the probes saw with live processes that no live entry holds
    count_unrecorded(counted, ctx)
    # ... and every run another project's controller leased on a shared target
    count_leases(counted, ctx)

    if ctx.policies.pause:  # the seed's PAUSE: nothing new starts; what runs is still watched
        for spec in candidates:
            entries[spec.id] = _waiting(entries[spec.id], PAUSED)
        candidates = []
    gates = Gates(entries, ctx, stages)
    pilots = Pilots(entries.values(), desired.config)  # for the launches whose spec gives no duration
    for spec in sorted(candidates, key=lambda s: (s.stage, s.priority, s.id)):
        entry = entries[spec.id]
        blocked = gates.blocked(spec)
        if blocked:
            entries[spec.id] = _waiting(entry, blocked)
            for held_by in gates.holding(spec):
                entries[held_by.id] = _note_held_stage(entries[held_by.id], spec.stage)
            continue
        previous = entry.current.target if entry.current is not None else None
        placed = place(spec, ctx, pinned=previous if ctx.policies.retry_target == "same" else None)
        if isinstance(placed, str):
            entry = _waiting(entry, placed)
            broken = env_escalation(spec, ctx)
            if broken is not None:
                entry = dataclasses.replace(entry, escalation=outcomes.escalate(entry, broken))
            entries[spec.id] = entry
            continue
        esc = entry.escalation
        if esc is not None and esc.open and esc.kind == "env":
            entry = dataclasses.replace(entry, escalation=esc.close(f"placed on {placed.target.name}", ctx.now_iso))
        entries[spec.id] = _waiting(entry, None)
        launch = _launch(entries[spec.id], spec, placed, ctx, pilots)
        actions.append(launch)
        if env_state(placed.target, ctx) is None and placed.target.name not in ctx.env_checks:
            commit = desired.revision or ""
            last = ctx.env.get(placed.target.name)
            ctx.env_checks[placed.target.name] = check_env_action(
                placed.target, ctx.policies, placed.root, commit, last
            )

    actions.extend(tidy_actions([entries[exp_id] for exp_id in done], ctx))
    actions.extend(_ship(actions, desired.revision))
    actions.extend(ctx.env_checks.values())
    state = StateFile(
        project=desired.config.project,
        entries=tuple(map(entries.__getitem__, order)),  # sorted by id
        updated=recorded.updated,
        decisions_applied=tuple(applied),
        stages_approved=tuple(stages),
        archived=recorded.archived,
    )
    for exp_id in order:
        entry, before = entries[exp_id], old.get(exp_id)
        if before is not entry and before != entry:
            actions.append(Record(entry.id, entry, describe(before, entry), entry.target or ""))
    measured = learned(vram, [entries[exp_id] for exp_id in sorted(on_gpu)], ctx)  # in id order, as state.entries
    return Plan(tuple(sorted(actions, key=sort_key)), state, recorded, measured)


PAUSED = "paused (policies.pause in config/reconciler.yaml): nothing new starts until it is false"


def _waiting(entry: StatusEntry, reason: str | None) -> StatusEntry:
    """The entry waiting for ``reason`` (the same object when that is already recorded)."""
    return entry if entry.waiting_reason == reason else dataclasses.replace(entry, waiting_reason=reason)


_PENDING, _ON_HOLD, _DONE = Status.PENDING, Status.ON_HOLD, Status.DONE
_ACTIVE = frozenset(s for s in Status if s.active)
"""An entry's current attempt may still have a process or job of ours (it is live) when its
status is one of these, or ``on_hold`` with the attempt not finished (tested inline, twice an
entry each pass)."""


def _pending(entry: StatusEntry, ctx: Context) -> tuple[StatusEntry, ExperimentSpec | None]:
    spec = ctx.specs.get(entry.id)
    if spec is None:
        if ctx.policies.prune:
            return outcomes.cancelled(entry, ctx.now, "removed from the spec (prune)"), None
        return dataclasses.replace(entry, waiting_reason="not in the spec any more"), None
    if spec.state is DesiredRunState.CANCELLED:
        return outcomes.cancelled(entry, ctx.now, "cancelled by the spec"), None
    if spec.state is DesiredRunState.HOLD:
        return dataclasses.replace(entry, waiting_reason="held by the spec (state: hold)"), None
    if spec.vram_probe and spec.vram_gb is None:
        return _waiting(entry, PROBE_NEEDED.format(exp_id=spec.id)), None
    due = parse_iso(entry.next_retry_at)
    if due is not None and due > ctx.now:
        return dataclasses.replace(entry, waiting_reason=f"retry backoff until {entry.next_retry_at}"), None
    return entry, spec


class _Holds:
    """Every live run of ours (adopted ones included) holds its slots and memory before any
    placement (``place.count_active``); and which entries ``tidy_actions`` and ``learned`` look at
    (placements never make an entry done, nor change its ``gpu_memory``)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.counted: set[tuple[str, str, int]] = set()
        """(target, exp_id, attempt) of the live runs counted."""
        self.done: list[str] = []
        self.on_gpu: list[str] = []

    def note(self, exp_id: str, entry: StatusEntry, current: Attempt | None = None) -> None:
        """Count ``entry`` (keyed ``exp_id``; ``current``: its current attempt, when the caller
        has it); the entries' order is the order of the calls."""
        if entry.gpu_memory is not None:
            self.on_gpu.append(exp_id)
        status = entry.status
        if status is _DONE:  # never live
            self.done.append(exp_id)
            return
        if current is None:
            current = entry.current
        if current is not None and (status in _ACTIVE or (status is _ON_HOLD and current.finished is None)):
            spec = self.ctx.specs.get(exp_id) if current.gpus else None  # a run on no GPU holds a slot only
            count_active(current, spec.vram_gb if spec is not None else None, self.ctx)
            self.counted.add((current.target, exp_id, current.n))


def _phase_guard(entries: dict[str, StatusEntry], ctx: Context) -> None:
    """A phase still running ``phase_guard_hours`` after its first dispatch: its active runs
    escalate (once; a ``continue`` decision on a run turns the guard off for that attempt)."""
    limit = ctx.policies.timeouts.phase_guard_hours
    by_phase: dict[str, list[StatusEntry]] = {}
    for entry in entries.values():
        if entry.phase and entry.attempts:
            by_phase.setdefault(entry.phase, []).append(entry)
    for phase, members in sorted(by_phase.items()):
        active = [e for e in members if e.status.active and e.condition("Continued") is None]
        if not active:  # a phase with nothing active: no start to parse
            continue
        starts = [t for e in members for a in e.attempts if (t := parse_iso(a.started)) is not None]
        if not starts:
            continue
        hours = (ctx.now - min(starts)).total_seconds() / 3600.0
        if hours <= limit:
            continue
        for entry in active:
            guard = Escalation(
                reason=f"phase {phase!r} has run {hours:.0f} h since its first dispatch (guard {limit:g} h); "
                f"{len(active)} run(s) still active",
                created=ctx.now_iso,
                needed="continue (keep waiting for it) or cancel",
                kind="phase_guard",
            )
            entries[entry.id] = dataclasses.replace(entry, escalation=outcomes.escalate(entry, guard))


def _note_held_stage(entry: StatusEntry, stage: int) -> StatusEntry:
    """The open escalation of a failed experiment says which later stage it holds, and how to
    release it (once: the text does not change pass after pass)."""
    escalation = entry.escalation
    line = f"stage {stage} waits for this stage: `reconcile resolve --approve-stage {stage}` releases it"
    if escalation is None or not escalation.open or line in escalation.needed:
        return entry
    return dataclasses.replace(entry, escalation=dataclasses.replace(escalation, needed=f"{escalation.needed}; {line}"))


def _launch(entry: StatusEntry, spec: ExperimentSpec, placed: Placement, ctx: Context, pilots: Pilots) -> Launch:
    n = entry.attempt + 1
    root = placed.root
    commit = ctx.desired.revision or ""
    rdir = run_dir(root, entry.id, n)
    result = entry.result_file or spec.result_path
    checkpoint = checkpoint_path(placed.target, root, entry.id)
    command = render_command(entry, spec, placed.target, root, n)
    duration = estimate(spec, pilots, placed.target, ctx.desired.config)
    return Launch(
        exp_id=entry.id,
        target=placed.target.name,
        attempt=n,
        command=command,
        run_dir=rdir,
        token=launch_token(ctx.project, entry.id, n),
        code_dir=code_dir(root, commit),
        commit=commit,
        result_file=result,
        checkpoint_dir=checkpoint,
        gpus=placed.gpus,
        env=launch_env(spec, placed.gpus, placed.gpu_host, ctx.desired.config),
        expected_duration_hours=duration[0] if duration else None,
        duration_basis=duration[1] if duration else None,
        vram_gb=spec.vram_gb,
        vram_source=ctx.vram[spec.id].source if spec.id in ctx.vram else None,
        gpu_count=placed.gpu_count,
        lease=lease_request(
            placed.target, ctx.observed.target(placed.target.name), ctx.project, placed.gpus, spec.vram_gb, entry.id, n
        ),
    )


def _ship(actions: list[Action], revision: str | None) -> list[Action]:
    targets = sorted({(a.target, a.commit) for a in actions if isinstance(a, Launch)})
    return [ShipCode(target, commit) for target, commit in targets if commit or revision]
