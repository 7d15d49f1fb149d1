"""Which values a pass commits, and which it only keeps in ``.reconciler/`` (pure).

Design invariant 11: a commit means a transition (or a decision, an escalation, a result); the
``VOLATILE_FIELDS`` of an entry (probe counters, the job's progress and heartbeat) stay out of git
history except folded into those commits. So a pass splits the state it planned in two:

- the **committed** state (``dispatch/state.json``): every entry that changed in any other field
  is taken whole (its newest volatile values are folded in); an entry that changed only in its
  volatile fields keeps its last committed values there. ``fold_progress`` (a progress commit is
  due) takes every entry whole.
- the **newest volatile values** (``.reconciler/volatile.json``, never committed): those of every
  entry where they differ from the committed ones, with the entry's attempt number.

The planner's input is the merge of both (``merge``): the committed state with the newest volatile
values of the same attempt laid over it, so counters keep counting across passes that commit
nothing (an unreachable target reaches its threshold at the right pass). A lost ``.reconciler/``
costs only the counts and progress since the last commit: they restart from the committed values.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from reconciler.model.sidecar import DROPPED
from reconciler.model.status import HEARTBEAT_KEYS, StateFile, StatusEntry

Newest = dict[str, tuple[int, dict[str, Any]]]
"""Experiment id -> (attempt number, volatile values in JSON form)."""


def merge(committed: StateFile, newest: Mapping[str, tuple[int, Mapping[str, Any]]]) -> StateFile:
    """The committed state with the newest volatile values of the same attempt laid over it."""
    if not newest:
        return committed
    changed: dict[str, StatusEntry] = {}
    for entry in committed.entries:
        found = newest.get(entry.id)
        if found is not None and found[0] == entry.attempt:
            merged = entry.with_volatile(found[1])
            if merged != entry:
                changed[entry.id] = merged
    if not changed:
        return committed
    return committed.with_entries(tuple(changed.get(e.id, e) for e in committed.entries))


def split(before: StateFile, after: StateFile, *, fold_progress: bool) -> tuple[StateFile, Newest]:
    """(the state to commit, the newest volatile values to keep) for a pass that planned ``after``
    from ``before`` (the committed state as read, not merged)."""
    old = before.by_id()
    entries: list[StatusEntry] = []
    for entry in after.entries:
        prev = old.get(entry.id)
        if fold_progress or prev is None or prev is entry or not entry.same_committed(prev):
            entries.append(entry)
        else:
            entries.append(entry.with_volatile(prev.volatile()))
    committed = after.with_entries(tuple(entries))
    return committed, newest_of(after, committed)


def newest_of(after: StateFile, committed: StateFile) -> Newest:
    """The volatile values of ``after`` that ``committed`` does not hold."""
    kept = committed.by_id()
    out: Newest = {}
    for entry in after.entries:
        was = kept.get(entry.id)
        if was is entry:
            continue
        values = entry.volatile()
        if was is None or was.volatile() != values:
            out[entry.id] = (entry.attempt, values)
    return out


def progress_pending(before: StateFile, after: StateFile) -> bool:
    """Some entry's job reported progress (a sidecar change beyond the heartbeat) that
    ``before`` (the committed state) does not hold."""
    old = before.by_id()
    for entry in after.entries:
        prev = old.get(entry.id)
        if prev is None or prev.sidecar == entry.sidecar:
            continue
        if _beyond_heartbeat(dict(prev.sidecar)) != _beyond_heartbeat(dict(entry.sidecar)):
            return True
    return False


def _beyond_heartbeat(sidecar: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sidecar.items() if k not in HEARTBEAT_KEYS and k != DROPPED}  # dropped: noise


def progress_commit_due(before: StateFile, after: StateFile, now: datetime, minutes: float) -> bool:
    """A progress commit folds every entry's newest values in: when a job reported progress that
    is not committed and the last commit of the state (``before.updated``) is ``minutes`` old."""
    if not progress_pending(before, after):
        return False
    try:
        last = datetime.fromisoformat(before.updated)
    except ValueError:
        return True
    if last.tzinfo is None or now.tzinfo is None:
        return True
    return (now - last).total_seconds() >= minutes * 60.0
