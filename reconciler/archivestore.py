"""The archive files on the project's disk: ``dispatch/archive/<phase>.json`` (``model.archive``).

Each is a state file holding the entries of one phase. Written before ``dispatch/state.json``
drops them and removed only after ``dispatch/state.json`` holds them again, so a pass killed at
any point leaves every entry in one place at least (an entry in both: the live one wins, and the
phase is restored by the next pass). The working-tree file is the newest; when it is missing or
unusable the committed one is read. Every read goes through ``confine.read_file`` (no link
followed) and the full state-file checks, and an archive must hold only its own phase.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from reconciler.atomic import atomic_write_text
from reconciler.confine import read_file
from reconciler.errors import UnsafePathError
from reconciler.model.archive import archive_path
from reconciler.model.status import StateFile, StatusEntry

ARCHIVE_BYTES = 2 * 1024 * 1024 * 1024
"""The largest archive file read (a phase of about a million experiments)."""

Committed = Callable[[str], bytes | None]
"""The committed bytes of a project-relative path (``None``: absent)."""


class ArchiveReadError(ValueError):
    """An archive file that cannot be used (absent, not a state file, another phase's entries)."""


def read_phase(project_dir: Path | None, phase: str, committed: Committed | None = None) -> tuple[StatusEntry, ...]:
    """The entries of the archived ``phase``: the working-tree file (``project_dir``; ``None``:
    the committed one only), else the committed one."""
    path = archive_path(phase)
    problems: list[str] = []
    try:
        if project_dir is not None:
            return _entries(read_file(project_dir, path, ARCHIVE_BYTES), phase)
    except FileNotFoundError:
        problems.append("missing")
    except (OSError, ValueError, TypeError, KeyError, AttributeError, UnsafePathError) as exc:
        problems.append(f"{type(exc).__name__}: {exc}")
    if committed is not None:
        try:
            data = committed(path)
            if data is not None:
                return _entries(data, phase)
            problems.append("not committed")
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            problems.append(f"committed: {type(exc).__name__}: {exc}")
    raise ArchiveReadError(f"{path}: {'; '.join(problems)}")


def _entries(data: bytes, phase: str) -> tuple[StatusEntry, ...]:
    state = StateFile.loads(data)
    strays = [e.id for e in state.entries if e.phase != phase]
    if strays:
        raise ValueError(f"holds experiments of another phase: {', '.join(strays[:3])}")
    return state.entries


def read_phases(
    project_dir: Path | None, phases: Iterable[str], committed: Committed | None = None
) -> tuple[dict[str, tuple[StatusEntry, ...]], dict[str, str]]:
    """(the entries of each phase that could be read, why each other could not)."""
    out: dict[str, tuple[StatusEntry, ...]] = {}
    failed: dict[str, str] = {}
    for phase in phases:
        try:
            out[phase] = read_phase(project_dir, phase, committed)
        except ArchiveReadError as exc:
            failed[phase] = str(exc)
    return out, failed


def write_phases(project_dir: Path, moved: Mapping[str, StateFile]) -> list[str]:
    """Write each archived phase's file (atomically); their paths."""
    paths = []
    for phase, state in sorted(moved.items()):
        path = archive_path(phase)
        atomic_write_text(project_dir / path, state.dumps())
        paths.append(path)
    return paths


def remove_phases(project_dir: Path, phases: Iterable[str], keep: Iterable[str]) -> None:
    """Remove the files of ``phases`` that are not archived again (``keep``)."""
    kept = set(keep)
    for phase in phases:
        if phase not in kept:
            (project_dir / archive_path(phase)).unlink(missing_ok=True)


def all_archived(
    project_dir: Path | None, state: StateFile, committed: Committed | None = None
) -> tuple[list[StatusEntry], dict[str, str]]:
    """Every archived entry of ``state``'s archived phases (for ``status --archived``, export, the
    history of one experiment), and the phases that could not be read, with why."""
    entries: list[StatusEntry] = []
    found, failed = read_phases(project_dir, [a.phase for a in state.archived], committed)
    for phase_entries in found.values():
        entries.extend(phase_entries)
    return entries, failed


def with_archived(project_dir: Path | None, state: StateFile, committed: Committed | None = None) -> StateFile:
    """``state`` with every archived entry in it (a live entry wins); unreadable phases are left out."""
    if not state.archived:
        return state
    entries, _failed = all_archived(project_dir, state, committed)
    by_id = state.by_id()
    for entry in entries:
        by_id.setdefault(entry.id, entry)
    return state.with_entries(by_id)
