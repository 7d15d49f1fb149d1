"""Pure status transitions of one entry, shared by the planner (facts seen by the probe) and by
``fold`` (results of applied actions): an attempt started, ended well, failed, went silent."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

from reconciler.model.actions import Kill, KillReason
from reconciler.model.config import Policies
from reconciler.model.escalation import Escalation
from reconciler.model.observed import RunObservation
from reconciler.model.seedrun import SEED
from reconciler.model.spec import ExperimentSpec
from reconciler.model.status import Attempt, Status, StatusEntry, Unreachable
from reconciler.model.vram import OVER
from reconciler.plan.context import iso, parse_iso
from reconciler.plan.entries import resync_after_attempt
from reconciler.plan.failure import Failure, remediate
from reconciler.plan.retry import decide_retry

SILENCE_HOLD = "on_hold"
"""The escalation kind of a hold that ``silent`` raised (the target stopped answering)."""


def with_attempt(entry: StatusEntry, attempt: Attempt) -> StatusEntry:
    """The entry with ``attempt`` stored (replacing the record of the same number)."""
    others = tuple(a for a in entry.attempts if a.n != attempt.n)
    return dataclasses.replace(entry, attempts=tuple(sorted((*others, attempt), key=lambda a: a.n)))


def update_current(entry: StatusEntry, change: Callable[[Attempt], Attempt]) -> StatusEntry:
    """The entry with ``change`` applied to its current attempt (unchanged when it has none)."""
    current = entry.current
    if current is None:
        return entry
    return with_attempt(entry, change(current))


def started(entry: StatusEntry, attempt: Attempt, now: datetime, status: Status = Status.RUNNING) -> StatusEntry:
    """The attempt runs (launched by us, or adopted after a crash)."""
    entry = with_attempt(dataclasses.replace(entry, attempt=attempt.n), attempt)
    return dataclasses.replace(
        entry,
        status=status,
        target=attempt.target,
        host=attempt.target,  # as the seed's host named the machine; the machine's own name is the attempt's
        gpu=attempt.gpus[0] if attempt.gpus else None,
        pid=attempt.pid,
        job_id=attempt.job_id,
        started=attempt.started or iso(now),
        finished=None,
        results=(),
        git_commit=attempt.git_commit,
        next_retry_at=None,
        waiting_reason=None,
        failure_class=None,
        unreachable=Unreachable(),
        conditions=tuple(c for c in entry.conditions if c.type not in ("Continued", OVER)),
        gpu_memory=None,
    )


def done(
    entry: StatusEntry, now: datetime, exit_code: int = 0, results: tuple[tuple[str, float], ...] = ()
) -> StatusEntry:
    entry = update_current(entry, lambda a: dataclasses.replace(a, finished=iso(now), exit_code=exit_code))
    return dataclasses.replace(
        entry,
        status=Status.DONE,
        results=results,
        finished=iso(now),
        pid=None,
        waiting_reason=None,
        failure_class=None,
        escalation=entry.escalation
        if entry.escalation is not None and entry.escalation.open and entry.escalation.kind == "artifact"
        else close_escalation(entry, "the run finished and its result was collected", now),
    )


def escalate(entry: StatusEntry, escalation: Escalation) -> Escalation:
    """The entry's escalation after raising ``escalation``: an open one of the same kind stays
    as it was (one file per open problem, not one per pass)."""
    current = entry.escalation
    if current is not None and current.open and current.kind == escalation.kind:
        return current
    return escalation


def hold(entry: StatusEntry, escalation: Escalation) -> StatusEntry:
    """``on_hold`` for a person to decide, with ``escalation`` raised and noted."""
    return dataclasses.replace(
        entry,
        status=Status.ON_HOLD,
        escalation=escalate(entry, escalation),
        notes=note(entry.notes, f"on_hold: {escalation.reason}"),
    )


def close_escalation(entry: StatusEntry, resolution: str, now: datetime) -> Escalation | None:
    current = entry.escalation
    if current is None or not current.open:
        return current
    return current.close(resolution, iso(now))


def failed_attempt(
    entry: StatusEntry,
    failure: Failure,
    spec: ExperimentSpec | None,
    policies: Policies,
    now: datetime,
    exit_code: int | None = None,
) -> StatusEntry:
    """An attempt ended badly: retry with the class's remediation and a backoff, or fail."""
    entry = update_current(
        entry,
        lambda a: dataclasses.replace(
            a, finished=iso(now), exit_code=exit_code, failure_class=failure.klass, evidence=failure.evidence
        ),
    )
    entry = dataclasses.replace(entry, failure_class=failure.klass, pid=None, finished=iso(now))
    decision = decide_retry(entry, failure.klass, spec, policies)
    if decision.why_not is None:
        rule = decision.rule
        entry = resync_after_attempt(entry, spec)
        command = remediate(entry.command, rule)
        for key, value in rule.env:
            if f"{key}=" not in command.split(" ", 1)[0]:
                command = f"{key}={value} {command}"
        retry = entry.retry_count + 1
        delay = policies.backoff.delay(retry)
        line = f"attempt {entry.attempt} failed: {failure.message}; automatic retry {retry} of {entry.max_retries}"
        return dataclasses.replace(
            entry,
            status=Status.PENDING,
            retry_count=retry,
            command=command,
            next_retry_at=iso(now + timedelta(seconds=delay)),
            notes=note(entry.notes, line),
            waiting_reason=None,
        )
    why = decision.why_not
    escalation = Escalation(
        reason=f"attempt {entry.attempt} failed: {failure.message}; {why}",
        created=iso(now),
        needed="retry (after a fix), fail, or cancel",
        kind="failed",
        failure_class=failure.klass,
        evidence=failure.evidence,
    )
    return dataclasses.replace(
        entry,
        status=Status.FAILED,
        notes=note(entry.notes, f"attempt {entry.attempt} failed: {failure.message}; {why}"),
        escalation=escalate(entry, escalation),
    )


def never_started(entry: StatusEntry) -> StatusEntry:
    """A launch that left no run dir: forget the attempt, the experiment is pending again."""
    attempts = tuple(a for a in entry.attempts if a.n != entry.attempt)
    return dataclasses.replace(
        entry,
        status=Status.PENDING,
        attempt=entry.attempt - 1,
        attempts=attempts,
        pid=None,
        target=None,
        host=None,
        gpu=None,
        unreachable=Unreachable(),
    )


def cancelled(entry: StatusEntry, now: datetime, why: str) -> StatusEntry:
    entry = update_current(entry, lambda a: dataclasses.replace(a, finished=a.finished or iso(now)))
    return dataclasses.replace(
        entry,
        status=Status.CANCELLED,
        pid=None,
        finished=entry.finished or iso(now),
        waiting_reason=None,
        notes=note(entry.notes, why),
    )


def silent(entry: StatusEntry, policies: Policies, now: datetime, error: str) -> StatusEntry:
    """The target did not answer: the run is ``unreachable`` (never failed); past the thresholds
    it goes ``on_hold`` for a person to decide."""
    u = entry.unreachable
    start = parse_iso(entry.started)
    elapsed_probes = int((now - start).total_seconds() // max(policies.poll_interval, 1)) + 1 if start else 1
    probes = max(u.probes + 1, elapsed_probes)
    u = Unreachable(consecutive=u.consecutive + 1, total=u.total + 1, probes=probes)
    pol = policies.unreachable
    reason = None
    if u.consecutive >= pol.consecutive:
        reason = f"target unreachable for {u.consecutive} consecutive probes"
    elif u.total >= pol.total:
        reason = f"target unreachable in {u.total} probes in all"
    elif u.total > u.consecutive and u.probes >= pol.min_probes and u.total / u.probes > pol.ratio:
        # The ratio rule is for a target that comes and goes; a plain outage is the streak rule's.
        reason = f"target unreachable in {u.total} of {u.probes} probes"
    status = Status.ON_HOLD if reason else Status.UNREACHABLE
    if entry.status is Status.ON_HOLD:
        status = Status.ON_HOLD
    notes = entry.notes
    escalation = entry.escalation
    if reason and entry.status is not Status.ON_HOLD:
        notes = note(notes, f"on_hold: {reason} ({error})")
        held = Escalation(
            reason=f"on_hold: {reason} ({error}); the run may still be alive there",
            created=iso(now),
            needed="continue once the target answers, retry (after making sure no copy still runs), fail, or cancel",
            kind=SILENCE_HOLD,
            evidence=(error,),
        )
        escalation = escalate(entry, held)
    return dataclasses.replace(entry, status=status, unreachable=u, notes=notes, escalation=escalation)


def answered(entry: StatusEntry) -> StatusEntry:
    """The target answered again: the consecutive count resets (totals stay as evidence)."""
    if entry.unreachable.consecutive == 0:
        return entry
    return dataclasses.replace(entry, unreachable=dataclasses.replace(entry.unreachable, consecutive=0))


def came_back(entry: StatusEntry, now: datetime) -> StatusEntry:
    """The target of a run held only because it did not answer answers again: the hold is
    lifted (the run is ``running`` until this pass's facts say otherwise) and its escalation is
    closed with a note. A hold for any other reason (duration or queue guard, a scheduler hold,
    a person) is left alone; the unreachable totals stay, as the ratio rule counts them."""
    held = entry.escalation
    if entry.status is not Status.ON_HOLD or held is None or not held.open or held.kind != SILENCE_HOLD:
        return entry
    why = "the target answers again; the run's own state is observed again"
    return dataclasses.replace(
        entry,
        status=Status.RUNNING,
        escalation=held.close(why, iso(now)),
        notes=note(entry.notes, f"hold lifted: {why}"),
    )


def note(notes: str, line: str) -> str:
    lines = [x for x in notes.split("\n") if x]
    lines.append(line)
    return "\n".join(lines[-10:])


def kill_action(entry: StatusEntry, reason: KillReason, run: RunObservation | None = None) -> Kill:
    """Kill the entry's current attempt; the probe's pid and start time win over the recorded ones."""
    attempt = entry.current
    assert attempt is not None
    return Kill(
        exp_id=entry.id,
        target=attempt.target,
        attempt=attempt.n,
        run_dir=attempt.run_dir,
        pid=run.pid if run is not None and run.pid is not None else attempt.pid,
        start_time=(run.start_time if run is not None else None) or attempt.start_time,
        job_id=attempt.job_id,
        reason=reason,
        tree=attempt.origin == SEED,
    )
