"""Transitions as words: one line per changed experiment for ``progress/lab.log`` and the commit
body, and the commit subject that counts them ("reconcile: 3 launched, 1 done, 1 failed")."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.model.status import StateFile, Status, StatusEntry
from reconciler.plan.adopt import ADOPTED


@dataclass(frozen=True)
class Event:
    exp_id: str
    before: str | None
    after: str
    detail: str
    adopted: bool = False
    """The attempt was adopted (a crashed pass had created or started it), not launched now."""

    @property
    def line(self) -> str:
        arrow = f"{self.before} -> {self.after}" if self.before else f"new, {self.after}"
        return f"{self.exp_id}: {arrow}" + (f" ({self.detail})" if self.detail else "")


def describe(before: StatusEntry | None, after: StatusEntry) -> str:
    if before is None:
        return f"new, {after.status.value}"
    if before.status != after.status or before.attempt != after.attempt:
        return f"{before.status.value} -> {after.status.value}"
    return "updated"


def events(old: StateFile, new: StateFile) -> list[Event]:
    """Every status or attempt change between two states, sorted by experiment id."""
    before = old.by_id()
    out: list[Event] = []
    for entry in sorted(new.entries, key=lambda e: e.id):
        prev = before.get(entry.id)
        if prev is not None and prev.status == entry.status and prev.attempt == entry.attempt:
            continue
        detail = _detail(entry)
        retried = _retry_words(prev, entry)
        if retried:
            detail = f"{retried}: {detail}" if detail else retried
        adopted = _adopted(prev, entry)
        if adopted:
            detail = f"adopted {detail}" if detail else "adopted"
        out.append(Event(entry.id, prev.status.value if prev else None, entry.status.value, detail, adopted))
    return out


def _adopted(prev: StatusEntry | None, entry: StatusEntry) -> bool:
    """A new attempt taken over from a crashed pass (``plan.adopt`` notes it), not launched."""
    if entry.attempt <= (prev.attempt if prev is not None else 0):
        return False
    last = entry.notes.rsplit("\n", 1)[-1]
    return last.startswith(f"attempt {entry.attempt} {ADOPTED} on ")


def _retry_words(prev: StatusEntry | None, entry: StatusEntry) -> str | None:
    """Why a new attempt was started (or the experiment went back to pending) in this pass: an
    automatic retry (counted against ``max_retries``) or a manual one (a ``retry`` decision, not
    counted); ``None`` when neither happened."""
    if prev is None:
        return None
    if entry.manual_retries > prev.manual_retries:
        auto = f"{entry.retry_count} of {entry.max_retries} automatic retries used"
        return f"manual retry {entry.manual_retries} (decision; {auto})"
    if entry.retry_count > prev.retry_count and entry.attempt > prev.attempt and prev.attempt > 0:
        ended = [a for a in entry.attempts if a.n == prev.attempt]
        klass = (ended[0].failure_class or "failed") if ended else "failed"
        return f"{klass}, {automatic_retry(entry)}"
    if entry.attempt > prev.attempt > 0 and prev.status is not Status.PENDING:
        ended = [a for a in entry.attempts if a.n == prev.attempt]
        return f"{ended[0].failure_class or 'ended'}, new attempt" if ended else None
    return None


def automatic_retry(entry: StatusEntry) -> str:
    """``automatic retry 2 of 2`` (``, after 1 manual retry`` when a person asked for others)."""
    words = f"automatic retry {entry.retry_count} of {entry.max_retries}"
    m = entry.manual_retries
    return words + (f", after {m} manual retr{'y' if m == 1 else 'ies'}" if m else "")


def _detail(entry: StatusEntry) -> str:
    a = entry.current
    if entry.status is Status.RUNNING and a is not None:
        where = a.target + (f" gpu {','.join(map(str, a.gpus))}" if a.gpus else "")
        pid = f" pid {a.pid}" if a.pid is not None else ""
        return f"attempt {a.n} on {where}{pid}"
    if entry.status is Status.QUEUED and a is not None:
        return f"attempt {a.n} on {a.target} job {a.job_id}"
    if entry.status is Status.PENDING and entry.retry_count and entry.failure_class:
        return f"{entry.failure_class}, {automatic_retry(entry)} after {entry.next_retry_at}"
    if entry.status is Status.FAILED:
        return entry.failure_class or ""
    if entry.status is Status.DONE and a is not None:
        return f"attempt {a.n} on {a.target}"
    held = entry.escalation
    if entry.status is Status.ON_HOLD and held is not None and held.open and held.kind != "on_hold":
        return f"{held.kind}: {held.reason}"[:200]
    if entry.status in (Status.UNREACHABLE, Status.ON_HOLD) and a is not None:
        return f"{a.target}: {entry.unreachable.consecutive} consecutive misses"
    return ""


_VERBS = {
    "running": "launched",
    "queued": "queued",
    "done": "done",
    "failed": "failed",
    "cancelled": "cancelled",
    "on_hold": "on hold",
    "unreachable": "unreachable",
    "pending": "pending",
}


def subject(evts: Iterable[Event]) -> str:
    counts: Counter[str] = Counter()
    for e in evts:
        retry_now = e.before == e.after == "running"
        if e.adopted and e.after in ("running", "queued"):
            counts["adopted"] += 1
        elif retry_now or (e.after == "pending" and e.before in ("running", "unreachable", "queued")):
            counts["retrying"] += 1
        elif e.after == "running" and e.before in ("unreachable", "on_hold"):
            counts["back"] += 1
        else:
            counts[_VERBS.get(e.after, e.after)] += 1
    if not counts:
        return "reconcile: status updated"
    order = [
        "launched",
        "adopted",
        "queued",
        "done",
        "failed",
        "retrying",
        "cancelled",
        "on hold",
        "unreachable",
        "back",
        "pending",
    ]
    parts = [f"{counts[k]} {k}" for k in order if counts[k]]
    parts += [f"{v} {k}" for k, v in sorted(counts.items()) if k not in order]
    return "reconcile: " + ", ".join(parts)
