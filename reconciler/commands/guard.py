"""``reconcile guard [FILES...]``: refuse a commit that stages a file only the reconciler writes.

Run by the ``reconcile-guard-status`` pre-commit hook. It reads the index itself (``git diff
--cached``), so it sees deletions too and passes on ``pre-commit run --all-files`` when nothing is
staged. The reconciler's own commits are made with ``git commit-tree`` and ``update-ref``
(``reconciler.gitstore.writer``), which run no hooks, so they never meet this guard. Two ways
through remain on purpose:

* a merge, cherry-pick or revert whose staged version of the file is the other side's version
  (the reconciler's commit being carried over, not a hand edit);
* ``RECONCILER_ALLOW_STATUS_EDIT=1`` for a deliberate repair by hand.
"""

from __future__ import annotations

import fnmatch
import os
import shlex
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import click

from reconciler.commands.common import EXIT_INVALID, EXIT_OK, project_option

OWNED_PATTERNS = (
    "dispatch/state.json",
    "dispatch/archive/*",
    "progress/lab.log",
    "progress/env_*.json",
    "progress/escalate_*.md",
    "experiments/results/*.csv",
)
"""Reconciler-owned paths, relative to a project root (which may sit below the repository root)."""

ALLOW_ENV = "RECONCILER_ALLOW_STATUS_EDIT"
OTHER_SIDES = ("MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD")
EXIT_REFUSED = 1


def is_owned(path: str) -> bool:
    """Whether ``path`` (repository-relative, ``/``-separated) is a reconciler-owned status file."""
    parts = PurePosixPath(path).parts
    for pattern in OWNED_PATTERNS:
        n = len(PurePosixPath(pattern).parts)
        if len(parts) >= n and fnmatch.fnmatchcase("/".join(parts[-n:]), pattern):
            return True
    return False


def _git(*args: str) -> str | None:
    """Output of ``git args`` in the current directory, or ``None`` when git fails."""
    try:
        proc = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return proc.stdout if proc.returncode == 0 else None


def _staged() -> list[str] | None:
    """Repository-relative paths whose staged content differs from HEAD; ``None`` outside git."""
    out = _git("diff", "--cached", "--name-only", "-z", "--no-renames")
    return None if out is None else [p for p in out.split("\0") if p]


def _blob(rev: str, path: str) -> str | None:
    out = _git("rev-parse", "-q", "--verify", f"{rev}:{path}")
    return out.strip() if out else None


def _carried_over(path: str) -> bool:
    """The staged version equals the version on the other side of a merge, cherry-pick or revert."""
    staged = _blob("", path)
    for ref in OTHER_SIDES:
        if _git("rev-parse", "-q", "--verify", ref) is not None and _blob(ref, path) == staged:
            return True
    return False


def refused(candidates: Iterable[str], check_history: bool = True) -> list[str]:
    """The owned paths among ``candidates`` that are not a carried-over reconciler version."""
    owned = sorted({p for p in candidates if is_owned(p)})
    return [p for p in owned if not (check_history and _carried_over(p))]


def _from_top(files: Iterable[str]) -> set[str]:
    """Make command-line paths (relative to the current directory) repository-relative."""
    prefix = (_git("rev-parse", "--show-prefix") or "").strip()
    return {PurePosixPath(os.path.normpath(prefix + f.replace(os.sep, "/"))).as_posix() for f in files}


@click.command("guard")
@click.argument("files", nargs=-1, type=click.Path())
@project_option
def guard(files: tuple[str, ...], project_dir: Path) -> None:
    """Refuse staged hand edits of reconciler-owned status files (a pre-commit hook).

    Without FILES every staged path is checked; with FILES only those among them. Exits 1 and
    lists the files when one is staged, unless RECONCILER_ALLOW_STATUS_EDIT=1.
    """
    if not project_dir.is_dir():
        click.echo(f"error: {project_dir} is not a directory: give the project's directory with -C DIR", err=True)
        sys.exit(EXIT_INVALID)
    os.chdir(project_dir)  # FILES and git's staged paths are read from there
    staged = _staged()
    if staged is None:  # not a git work tree: judge the named files as they are
        bad = refused(files, check_history=False)
    else:
        bad = refused(set(staged) & _from_top(files) if files else staged)
    if not bad:
        sys.exit(EXIT_OK)
    if os.environ.get(ALLOW_ENV) == "1":
        click.echo(f"reconcile guard: {ALLOW_ENV}=1, allowing hand edits of: {', '.join(bad)}", err=True)
        sys.exit(EXIT_OK)
    quoted = " ".join(shlex.quote(p) for p in bad)
    unborn = staged is not None and _git("rev-parse", "-q", "--verify", "HEAD") is None
    undo = "git rm --cached --quiet" if unborn else "git restore --staged"
    lines = [
        "reconcile guard: refusing to commit files that only the reconciler writes:",
        *(f"  {p}" for p in bad),
        f"undo with: {undo} {quoted}",
        "Change experiments through dispatch/*.yaml and dispatch/decisions.yaml (reconcile resolve);",
        f"to commit a deliberate repair anyway: {ALLOW_ENV}=1 git commit ...",
    ]
    click.echo("\n".join(lines), err=True)
    sys.exit(EXIT_REFUSED)
