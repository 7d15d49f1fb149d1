"""Human decisions from ``dispatch/decisions.yaml``, each carried out once (by its id).

A decision that must stop a live process becomes a ``Kill`` whose reason starts with
``decision:``; ``fold`` finishes the transition when the kill is verified.
"""

from __future__ import annotations

import dataclasses

from reconciler.model.actions import Action, ByDecision, Kill
from reconciler.model.decisions import Decision, DecisionAction
from reconciler.model.status import Status, StatusEntry, Unreachable
from reconciler.plan import outcomes
from reconciler.plan.context import Context
from reconciler.plan.entries import resync_after_attempt, set_condition


def apply_decisions(entries: dict[str, StatusEntry], ctx: Context) -> tuple[list[str], list[int], list[Action]]:
    """Carry out the decisions not yet applied; returns (applied ids, approved stages, kills)."""
    applied = list(ctx.recorded.decisions_applied)
    stages = list(ctx.recorded.stages_approved)
    kills: list[Action] = []
    for decision in ctx.desired.decisions:
        if decision.id in applied:
            continue
        if _waits_for_target(entries.get(decision.exp or ""), decision, ctx):
            continue  # it must stop a run on a target that does not answer: try on a later pass
        applied.append(decision.id)
        if decision.action is DecisionAction.APPROVE_STAGE:
            if decision.stage is not None and decision.stage not in stages:
                stages.append(decision.stage)
            continue
        entry = entries.get(decision.exp or "")
        if entry is None:
            continue
        entry, kill = _decide(entry, decision, ctx)
        entries[entry.id] = entry
        if kill is not None:
            kills.append(kill)
    return sorted(applied), sorted(stages), kills


def _waits_for_target(entry: StatusEntry | None, decision: Decision, ctx: Context) -> bool:
    if entry is None or not _live(entry) or decision.action in (DecisionAction.CONTINUE, DecisionAction.APPROVE_STAGE):
        return False
    assert entry.current is not None
    seen = ctx.observed.target(entry.current.target)
    return seen is None or not seen.reachable


def _live(entry: StatusEntry) -> bool:
    return entry.current is not None and entry.current.finished is None and entry.status in _LIVE


def _decide(entry: StatusEntry, decision: Decision, ctx: Context) -> tuple[StatusEntry, Kill | None]:
    note = f"decision {decision.id}: {decision.action.value}" + (f" ({decision.reason})" if decision.reason else "")
    entry = dataclasses.replace(
        entry,
        notes="\n".join(x for x in (entry.notes, note) if x),
        escalation=outcomes.close_escalation(entry, note, ctx.now),
    )
    live = _live(entry)
    action = decision.action
    if action is DecisionAction.CONTINUE:
        if live:
            # A person said "let it run": the duration guards do not hold this attempt again.
            entry = set_condition(entry, "Continued", "Decision", note, ctx)
            return dataclasses.replace(entry, status=Status.RUNNING, unreachable=Unreachable()), None
        entry = resync_after_attempt(entry, ctx.specs.get(entry.id))  # its next attempt runs the spec as it is
        return dataclasses.replace(entry, status=Status.PENDING, next_retry_at=None), None
    if live:
        return entry, outcomes.kill_action(entry, ByDecision(action.value, decision.id))
    if action is DecisionAction.RETRY:
        # A manual retry: it takes the spec's command as it is now and does not use up the
        # automatic retries (``retry_count``); ``manual_retries`` counts it.
        entry = resync_after_attempt(entry, ctx.specs.get(entry.id))
        return dataclasses.replace(
            entry,
            status=Status.PENDING,
            next_retry_at=None,
            failure_class=None,
            waiting_reason=None,
            manual_retries=entry.manual_retries + 1,
        ), None
    if action is DecisionAction.FAIL:
        return dataclasses.replace(entry, status=Status.FAILED), None
    return outcomes.cancelled(entry, ctx.now, "cancelled by decision"), None


_LIVE = (Status.RUNNING, Status.QUEUED, Status.UNREACHABLE, Status.ON_HOLD)
