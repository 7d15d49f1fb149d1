"""Fold the results of applied actions into the planned state (pure).

The planner decided what to try; what happened decides the status: a launch that answered with
a pid is ``running``; one that failed half-way leaves its attempt ``unreachable`` so the next probe
settles it (never a second launch); a verified kill finishes the transition it was for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from reconciler.model.actions import (
    ActionResult,
    ByDecision,
    Cancel,
    Collect,
    Collected,
    Fatal,
    Kill,
    Launch,
    Leftover,
    NotTried,
    Refused,
    Restart,
    Started,
    Tidy,
    TidyReport,
)
from reconciler.model.decisions import DecisionAction
from reconciler.model.desired import DesiredState
from reconciler.model.escalation import Escalation
from reconciler.model.status import Attempt, Condition, StateFile, Status, StatusEntry, Unreachable
from reconciler.plan import outcomes
from reconciler.plan.context import iso
from reconciler.plan.core import Plan
from reconciler.plan.entries import resync_after_attempt
from reconciler.plan.failure import INVALID_RESULT, LAUNCH_ERROR, Failure
from reconciler.plan.tidy import TIDIED

FOREIGN_RUN_DIR = "ForeignRunDir"
"""The reason of a launch refused because its run dir holds another (or no) token."""


def fold(plan: Plan, results: Sequence[ActionResult], desired: DesiredState, now: datetime) -> StateFile:
    entries = plan.state.by_id()
    specs = desired.by_id()
    undone: set[str] = set()
    policies = desired.config.policies
    for res in results:
        action = res.action
        entry = entries.get(action.exp_id)
        if entry is None:
            continue
        spec = specs.get(entry.id)
        if isinstance(action, Launch) and isinstance(res.outcome, NotTried):
            entry = dataclasses.replace(_before_adoption(entry, action, plan), waiting_reason=res.message)
        elif isinstance(action, Launch) and res.outcome == Refused(FOREIGN_RUN_DIR):
            # Someone else's run dir is where ours must go: it is never claimed, and nothing of it
            # is taken as ours (no failure, no result); the entry waits until a person removes it.
            why = f"not launched: {action.run_dir} on {action.target} is not ours ({res.message}); remove it there"
            entry = dataclasses.replace(entry, waiting_reason=why)
        elif isinstance(action, Launch):
            entry = _launched(entry, action, res, now)
            if not res.ok and not res.temporary:
                failure = Failure(LAUNCH_ERROR, (res.message,), f"launch failed: {res.message}")
                entry = outcomes.failed_attempt(entry, failure, spec, policies, now)
        elif isinstance(action, Collect):
            if res.ok:
                means = res.outcome.means if isinstance(res.outcome, Collected) else ()
                entry = outcomes.done(entry, now, results=means)
            elif not res.temporary:
                failure = Failure(INVALID_RESULT, (res.message,), f"result rejected: {res.message}")
                entry = outcomes.failed_attempt(entry, failure, spec, policies, now, exit_code=0)
        elif isinstance(action, Kill):
            if not res.ok and isinstance(action.reason, ByDecision):
                # The decision could not stop the run: it is not applied; a later pass tries again.
                undone.add(action.reason.decision_id)
                before = plan.recorded.get(entry.id)
                entry = dataclasses.replace(entry, escalation=before.escalation if before else entry.escalation)
            entry = _killed(entry, action, res, desired, now)
        elif isinstance(action, Tidy) and (res.ok or not res.temporary):
            entry = _tidied(entry, res, now)
        entries[entry.id] = entry
    return StateFile(
        project=plan.state.project,
        entries=tuple(sorted(entries.values(), key=lambda e: e.id)),
        updated=plan.state.updated,
        decisions_applied=tuple(d for d in plan.state.decisions_applied if d not in undone),
        stages_approved=plan.state.stages_approved,
        archived=plan.state.archived,
    )


def _before_adoption(entry: StatusEntry, action: Launch, plan: Plan) -> StatusEntry:
    """A launch not tried (a busy scheduler, a target whose code or environment is not ready)
    changes nothing: an attempt this pass adopted only to start it (its run dir created by an
    earlier pass, never started) is given back, so the entry stays as recorded and its notes do
    not grow every pass while it waits."""
    before = plan.recorded.get(entry.id)
    if entry.attempt != action.attempt or (before is not None and before.attempt >= action.attempt):
        return entry
    return before if before is not None else outcomes.never_started(entry)


def _launched(entry: StatusEntry, action: Launch, res: ActionResult, now: datetime) -> StatusEntry:
    started = res.outcome if isinstance(res.outcome, Started) else Started()
    attempt = Attempt(
        n=action.attempt,
        target=action.target,
        command=action.command,
        run_dir=action.run_dir,
        token=action.token,
        host=started.host if isinstance(res.outcome, Started) else None,
        gpus=action.gpus,
        pid=started.pid,
        start_time=started.start_time,
        job_id=started.job_id,
        started=iso(now),
        git_commit=action.commit or None,
        env=action.env,
    )
    if entry.expected_duration_hours is None and action.expected_duration_hours is not None:
        entry = dataclasses.replace(
            entry, expected_duration_hours=action.expected_duration_hours, duration_basis=action.duration_basis
        )
    if res.ok:
        status = Status.QUEUED if attempt.job_id and started.queued else Status.RUNNING
        return outcomes.started(entry, attempt, now, status=status)
    entry = outcomes.started(entry, attempt, now, status=Status.UNREACHABLE)
    return dataclasses.replace(
        entry,
        unreachable=Unreachable(consecutive=1, total=1, probes=1),
        notes=outcomes.note(entry.notes, f"launch of attempt {action.attempt} unconfirmed: {res.message}"),
    )


def _killed(entry: StatusEntry, action: Kill, res: ActionResult, desired: DesiredState, now: datetime) -> StatusEntry:
    reason = action.reason
    if not res.ok and isinstance(reason, Leftover):  # tried again next pass: no note per pass
        why = f"attempt {action.attempt} left processes that could not be stopped ({res.message}); retry waits"
        return dataclasses.replace(entry, waiting_reason=why)
    if not res.ok:
        why = f"kill of attempt {action.attempt} failed: {res.message}"
        return dataclasses.replace(entry, notes=outcomes.note(entry.notes, why))
    spec = desired.spec(entry.id)
    match reason:
        case Fatal(klass):
            evidence = entry.current.evidence if entry.current else ()
            failure = Failure(klass, evidence, f"{klass} seen in the log; process group killed")
            return outcomes.failed_attempt(entry, failure, spec, desired.config.policies, now)
        case Restart(why):
            entry = outcomes.update_current(
                entry, lambda a: dataclasses.replace(a, finished=iso(now), failure_class="restarted")
            )
            entry = dataclasses.replace(
                resync_after_attempt(entry, spec), status=Status.PENDING, pid=None, next_retry_at=None
            )
            return dataclasses.replace(
                entry, notes=outcomes.note(entry.notes, f"attempt {action.attempt} stopped: {why}")
            )
        case Leftover():
            return dataclasses.replace(
                entry, notes=outcomes.note(entry.notes, f"stopped what attempt {action.attempt} left running")
            )
        case ByDecision(DecisionAction.RETRY):
            entry = outcomes.update_current(
                entry, lambda a: dataclasses.replace(a, finished=iso(now), failure_class="killed")
            )
            entry = resync_after_attempt(entry, spec)
            return dataclasses.replace(
                entry, status=Status.PENDING, pid=None, next_retry_at=None, manual_retries=entry.manual_retries + 1
            )
        case ByDecision(DecisionAction.FAIL):
            entry = outcomes.update_current(
                entry, lambda a: dataclasses.replace(a, finished=iso(now), failure_class="killed")
            )
            return dataclasses.replace(entry, status=Status.FAILED, pid=None, finished=iso(now))
        case ByDecision() | Cancel():
            return outcomes.cancelled(entry, now, f"killed: {reason}")


def _tidied(entry: StatusEntry, res: ActionResult, now: datetime) -> StatusEntry:
    """Record the tidy once (a ``Tidied`` condition); a Hub that does not list the files keeps the
    checkpoint and opens an ``artifact`` escalation."""
    report = res.outcome if isinstance(res.outcome, TidyReport) else TidyReport()
    condition = Condition(TIDIED, res.ok, "Done" if res.ok else "NotDone", res.message[:300], iso(now))
    entry = dataclasses.replace(entry, conditions=(*(c for c in entry.conditions if c.type != TIDIED), condition))
    if report.confirmed is False:
        missing = ", ".join(report.missing)[:300]
        problem = Escalation(
            reason=f"the Hub does not list the uploaded checkpoint ({missing or 'nothing listed'}); it was kept",
            created=iso(now),
            needed="upload it again and continue; nothing was deleted",
            kind="artifact",
        )
        entry = dataclasses.replace(entry, escalation=outcomes.escalate(entry, problem))
    return entry
