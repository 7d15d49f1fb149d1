"""A pass's part in archiving phases (``model.archive``, ``plan.archive``, ``archivestore``).

At load, ``bring_back`` returns the archived phases this pass needs (their specs changed, a
decision names one of their experiments, or a killed pass left an entry in both places) into the
recorded state. Before the status files are written, ``move_out`` writes the archive file of
each phase that ended, and returns the state without it; ``dispatch/state.json`` is written
after it, and ``drop_restored`` removes the files of restored phases only then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reconciler.archivestore import ArchiveReadError, read_phase, read_phases, remove_phases, write_phases
from reconciler.crashpoints import crash_point
from reconciler.gitstore.repo import ProjectRepo
from reconciler.loadcache import phase_digests
from reconciler.model.archive import ARCHIVE_DIR
from reconciler.model.desired import DesiredState
from reconciler.model.status import StateFile
from reconciler.plan.archive import archive, restored, to_restore, unplaced_decisions


@dataclass(frozen=True)
class Restored:
    state: StateFile
    phases: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()


def bring_back(
    project_dir: Path,
    committed: Callable[[str], bytes | None],
    desired: DesiredState,
    state: StateFile,
    warnings: list[str],
) -> Restored:
    """``state`` with the archived phases this pass needs back."""
    wanted = to_restore(desired, state, phase_digests(desired) if state.archived else None)
    unplaced = unplaced_decisions(desired, state)
    for record in state.archived if unplaced else ():
        if record.phase in wanted:
            continue
        try:
            ids = {e.id for e in read_phase(project_dir, record.phase, committed)}
        except ArchiveReadError:
            continue
        named = sorted(ids & unplaced)
        if named:
            wanted[record.phase] = f"a decision names {named[0]}"
    if not wanted:
        return Restored(state)
    found, failed = read_phases(project_dir, wanted, committed)
    for phase, why in failed.items():
        warnings.append(
            f"archived phase {phase!r} is needed back ({wanted[phase]}) but {why}: its experiments stay archived"
        )
    lines = tuple(
        f"phase {phase}: brought back from the archive ({len(entries)} experiments): {wanted[phase]}"
        for phase, entries in sorted(found.items())
    )
    return Restored(restored(state, found), tuple(sorted(found)), lines)


@dataclass(frozen=True)
class MovedOut:
    state: StateFile
    """What ``dispatch/state.json`` holds now."""
    moved: dict[str, StateFile]
    lines: tuple[str, ...] = ()


def move_out(project_dir: Path, desired: DesiredState, state: StateFile, now: datetime) -> MovedOut:
    """Archive the phases that ended: their files are written here (before the state file)."""
    left, moved = archive(state, desired, now)
    if not moved:
        return MovedOut(state, {})
    paths = write_phases(project_dir, moved)
    crash_point("after_archive_write")  # the entries are in both files until the state file is written
    lines = tuple(
        f"phase {phase}: archived ({len(s.entries)} experiments) to {path}"
        for (phase, s), path in zip(sorted(moved.items()), paths, strict=True)
    )
    return MovedOut(left, moved, lines)


def with_unsaved_archives(project_dir: Path, repo: ProjectRepo, state: StateFile) -> StateFile:
    """``state`` with the entries of the archive files git shows uncommitted (a pass that wrote
    them was killed before its commit): their result files, notes and escalations are committed
    with them by this pass, as the killed pass would have. The usual pass reads nothing here."""
    if not state.archived:
        return state
    dirty = set(repo.dirty_paths([ARCHIVE_DIR]))
    phases = [a.phase for a in state.archived if a.file in dirty]
    if not phases:
        return state
    found, _failed = read_phases(project_dir, phases)
    by_id = state.by_id()
    for entries in found.values():
        for entry in entries:
            by_id.setdefault(entry.id, entry)
    return state.with_entries(by_id)


def drop_restored(project_dir: Path, restored_phases: tuple[str, ...], state: StateFile) -> None:
    """Remove the files of the phases brought back that this pass did not archive again (after
    ``dispatch/state.json`` holds their entries)."""
    remove_phases(project_dir, restored_phases, keep=[a.phase for a in state.archived])
