"""Decisions for an attempt that is a batch job and has no exit code yet (pure).

The run dir's ``exit_code`` sentinel and the result file decide completion, as for processes
(``active``); the scheduler's state explains the rest:

- ``queued``: the entry is ``queued``; queued longer than ``queue_factor`` x the expected duration
  it goes ``on_hold`` with an escalation (the job stays in the queue);
- ``held`` (by a person or the scheduler): ``on_hold`` with an escalation saying how to release it;
- ``running``: the entry is ``running`` (its ``started`` is when the job started) and the process
  rules apply (fatal log lines, duration guards, restart, cancel);
- ended without an exit code (walltime, node failure, preemption, out of memory): a failed attempt
  of the matching class; cancelled outside the reconciler: ``cancelled``; completed or failed with
  no sentinel: ``lost`` once the run dir has been quiet for the grace period (shared filesystems
  show files late);
- not known to the scheduler any more and no exit code: ``lost`` after the grace period. The
  scheduler not answering never gets here: the probe then fails and the target is unreachable.
- ``unknown`` (its id was only in the run dir, not yet asked): wait one pass.

A failing exit code recorded while the scheduler still shows the job live waits for the job's
final state too (``job_still_ending``): walltime or preemption explain a SIGTERM's 143.
"""

from __future__ import annotations

import dataclasses

from reconciler.model.actions import Action, Cancel
from reconciler.model.escalation import Escalation
from reconciler.model.observed import RunObservation
from reconciler.model.spec import ExperimentSpec
from reconciler.model.status import Status, StatusEntry
from reconciler.plan import outcomes
from reconciler.plan.context import Context, parse_iso
from reconciler.plan.failure import LOST, Failure, classify

QUEUED = "queued"
HELD = "held"
RUNNING = "running"
UNKNOWN = "unknown"
_EXPLAINED = ("timeout", "node_fail", "preempted", "out_of_memory")


def decide_job(
    entry: StatusEntry, run: RunObservation, spec: ExperimentSpec | None, ctx: Context, wants_cancel: bool
) -> tuple[StatusEntry, list[Action], bool]:
    """``(entry, actions, final)``; ``final`` False means "running: apply the process rules"."""
    state = run.job_state
    if state in (QUEUED, RUNNING):
        entry = _released(entry, run, ctx)
    if state == UNKNOWN:
        if entry.status in (Status.QUEUED, Status.RUNNING, Status.UNREACHABLE):
            entry = dataclasses.replace(entry, status=Status.RUNNING if run.launched else Status.QUEUED)
        return entry, [], True
    if state in (QUEUED, HELD, RUNNING) and wants_cancel:
        why = "removed from the spec (prune)" if spec is None else "cancelled by the spec"
        return entry, [outcomes.kill_action(entry, run=run, reason=Cancel(why))], True
    if state == QUEUED:
        return _queued(entry, ctx), [], True
    if state == HELD:
        return _held(entry, run, ctx), [], True
    if state == RUNNING:
        if entry.status in (Status.QUEUED, Status.UNREACHABLE):
            entry = dataclasses.replace(entry, status=Status.RUNNING, started=ctx.now_iso)
        return entry, [], False
    if wants_cancel:
        return outcomes.cancelled(entry, ctx.now, "cancelled by the spec (the job had ended)"), [], True
    if state in _EXPLAINED:
        failure = classify(None, run.log_tail, state)
        return outcomes.failed_attempt(entry, failure, spec, ctx.policies, ctx.now), [], True
    if state == "cancelled":
        why = f"job {run.job_id} was cancelled on the scheduler, outside the reconciler"
        return outcomes.cancelled(entry, ctx.now, why), [], True
    quiet = run.heartbeat_age if run.heartbeat_age is not None else run.age
    if quiet is not None and quiet < ctx.policies.lost_grace_seconds:
        return entry, [], True
    said = f"the scheduler reports it {state}" if state else "the scheduler no longer knows it"
    failure = Failure(LOST, tuple(run.log_tail[-5:]), f"job {run.job_id} ended without an exit code ({said})")
    return outcomes.failed_attempt(entry, failure, spec, ctx.policies, ctx.now), [], True


def job_still_ending(run: RunObservation, ctx: Context) -> bool:
    """A job's wrapper recorded a failing exit code but the scheduler still shows the job live:
    wait (for at most the grace period) for its final state, which may explain the failure
    (walltime, preemption, out of memory) better than the exit code."""
    if run.job_id is None or run.exit_code in (None, 0):
        return False
    if run.job_state not in (QUEUED, HELD, RUNNING, UNKNOWN):
        return False
    return (run.heartbeat_age or 0.0) < ctx.policies.lost_grace_seconds


def _queued(entry: StatusEntry, ctx: Context) -> StatusEntry:
    if entry.status is Status.ON_HOLD:
        return entry
    entry = dataclasses.replace(entry, status=Status.QUEUED)
    attempt = entry.current
    submitted = parse_iso(attempt.started if attempt else None) or parse_iso(entry.started)
    hours = entry.expected_duration_hours
    if not hours or submitted is None or entry.condition("Continued") is not None:
        return entry
    waited = (ctx.now - submitted).total_seconds() / 3600.0
    factor = ctx.policies.timeouts.queue_factor
    if waited <= factor * hours:
        return entry
    held = Escalation(
        reason=f"queued {waited:.2f} h, over {factor:g}x the expected {hours:g} h; the job is still in the queue",
        created=ctx.now_iso,
        needed="continue (keep waiting), retry elsewhere (cancel it first), or cancel",
        kind="queue",
    )
    return outcomes.hold(entry, held)


def _released(entry: StatusEntry, run: RunObservation, ctx: Context) -> StatusEntry:
    """A job held by the scheduler and released on the cluster: the hold it caused is over."""
    escalation = entry.escalation
    if entry.status is not Status.ON_HOLD or escalation is None or not escalation.open or escalation.kind != "held":
        return entry
    closed = outcomes.close_escalation(entry, f"job {run.job_id} was released on the cluster", ctx.now)
    return dataclasses.replace(entry, status=Status.QUEUED, escalation=closed)


def _held(entry: StatusEntry, run: RunObservation, ctx: Context) -> StatusEntry:
    if entry.status is Status.ON_HOLD:
        return entry
    held = Escalation(
        reason=f"job {run.job_id} is held by the scheduler",
        created=ctx.now_iso,
        needed="release it on the cluster (qrls / scontrol release) and continue, or cancel",
        kind="held",
    )
    return outcomes.hold(entry, held)
