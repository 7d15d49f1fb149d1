"""The files a pass writes before its commit (each atomically): ``dispatch/state.json`` (its
committed part) and ``.reconciler/volatile.json`` (the rest: ``model.volatile``), the lab log,
escalation files, environment verdicts and the VRAM measurements the plan learned. The engine
commits what this wrote; a pass killed in between leaves files the next pass commits."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reconciler import escalations
from reconciler.atomic import atomic_write_text
from reconciler.crashpoints import crash_point
from reconciler.model.actions import ActionResult, EnvChecked
from reconciler.model.env import EnvVerdict
from reconciler.model.status import StateFile
from reconciler.model.volatile import progress_commit_due, split
from reconciler.model.vram import Measurement
from reconciler.plan import Event
from reconciler.plan.context import iso
from reconciler.statestore import (
    append_log,
    read_vram,
    write_env_verdict,
    write_inflight,
    write_state,
    write_volatile,
    write_vram,
)


@dataclass(frozen=True)
class PassFiles:
    """What a pass has to write: its planned state (with the apply stage's outcomes), its
    transitions, its action results, whether the state file was restored, the VRAM it learned."""

    state: StateFile
    events: tuple[Event, ...]
    results: tuple[ActionResult, ...]
    restored: bool
    learned: tuple[Measurement, ...]


def write_pass_files(
    project_dir: Path, committed: StateFile, result: PassFiles, now: datetime, progress_minutes: float
) -> tuple[StateFile, list[EnvVerdict], list[str], bool, list[str]]:
    """Write state.json, lab.log, escalations, env verdicts and learned VRAM of this pass (each
    atomically).

    ``dispatch/state.json`` gets the committed part of the planned state; the newest counters,
    progress and heartbeats that no transition folds in go to ``.reconciler/volatile.json`` (the
    rule: ``reconciler.model.volatile``). Returns the full newest state, the env verdicts, their
    log lines, whether a progress commit is due, and the lines of the VRAM measurements learned."""
    state = result.state
    progress = progress_commit_due(committed, state, now, progress_minutes)
    to_commit, newest = split(committed, state, fold_progress=progress)
    updated = committed.updated
    if not to_commit.same_content(committed) or result.restored:
        updated = iso(now)
        write_state(project_dir, dataclasses.replace(to_commit, updated=updated))
        append_log(project_dir, [f"{iso(now)} {e.line}" for e in result.events])
    crash_point("after_state_write")
    write_volatile(project_dir, newest, iso(now))
    write_inflight(project_dir, [])
    state = dataclasses.replace(state, updated=updated)
    _write_escalations(project_dir, committed, state, now)
    verdicts = [r.outcome.verdict for r in result.results if isinstance(r.outcome, EnvChecked)]
    for verdict in verdicts:
        write_env_verdict(project_dir, verdict)
    env_lines = [
        f"{v.target}: {v.status}" + (f" ({v.evidence[-1]})" if v.evidence else "") + v.repair_summary()
        for v in verdicts
    ]
    if env_lines:
        append_log(project_dir, [f"{iso(now)} env {line}" for line in env_lines])
    return state, verdicts, env_lines, progress, _learn_vram(project_dir, result.learned, now)


def _learn_vram(project_dir: Path, learned: tuple[Measurement, ...], now: datetime) -> list[str]:
    """Record the peaks of runs over their reservations in ``experiments/vram.json`` (the next
    placements reserve them); their lines for the lab log and the commit body."""
    if not learned:
        return []
    book = read_vram(project_dir)
    lines = []
    for m in learned:
        book = book.add(m)
        lines.append(f"vram {m.exp_id}: {m.source} used {m.peak_gb:g} GB on {m.target}, over its reservation: recorded")
    write_vram(project_dir, book)
    append_log(project_dir, [f"{iso(now)} {line}" for line in lines])
    return lines


def _write_escalations(project_dir: Path, before: StateFile, after: StateFile, now: datetime) -> None:
    """Write ``progress/escalate_<id>.md`` for each escalation opened or closed by this pass."""
    old = before.by_id()
    lines: list[str] = []
    for entry in after.entries:
        if entry.escalation is None or not escalations.changed(old.get(entry.id), entry):
            continue
        path = escalations.path_of(entry)
        atomic_write_text(project_dir / path, escalations.render(entry, entry.escalation))
        verb = "escalated" if entry.escalation.open else "escalation closed"
        lines.append(f"{iso(now)} {entry.id}: {verb}: {entry.escalation.reason}")
    append_log(project_dir, lines)
