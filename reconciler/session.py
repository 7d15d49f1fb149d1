"""The one way into a project for every command that changes it (``reconcile``, ``env-check``,
``resolve``): "lock, load, change, commit".

``open_project`` checks the tree (no dir of ours may be a symlink: exit 2 before any lock, target or
write), takes the project lock (at once, ``LockHeld`` if another holds it; or waiting for it, for a
person's ``resolve``), sweeps the temp files a killed write of ours left, and opens the repository.
``Session.desired`` loads the desired state committed at HEAD. The caller writes its files (each
atomically, confined to the project) and commits them with ``gitstore.writer.commit_status``, which
commits exactly those paths and nothing a person left staged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from reconciler import loadcache
from reconciler.atomic import sweep_temp_files
from reconciler.confine import check_tree
from reconciler.crashpoints import crash_point
from reconciler.gitstore.repo import ProjectRepo
from reconciler.gitstore.tree import GitTree
from reconciler.load import load_desired
from reconciler.lockfile import ProjectLock, waiting_lock
from reconciler.model.desired import DesiredState
from reconciler.statestore import CONFINED_DIRS, CONFINED_FILES, OWNED, WRITTEN_DIRS


class Locking(Enum):
    TAKE = "take"
    """Take the lock now, or fail with ``LockHeld`` (exit 75): a pass, an environment check."""
    WAIT = "wait"
    """Wait for the lock a while (a person's ``resolve`` while a pass runs)."""
    NONE = "none"
    """No lock (a dry run writes nothing)."""


@dataclass(frozen=True)
class Session:
    project_dir: Path
    repo: ProjectRepo

    def desired(self) -> tuple[GitTree, DesiredState]:
        """HEAD's tree and the desired state it holds (its revision: the last commit that changed
        it, status commits of ours excluded)."""
        tree, cached = self.cached_desired()
        return tree, cached.desired()

    def cached_desired(self) -> tuple[GitTree, loadcache.CachedDesired]:
        """HEAD's tree and its desired state as kept by ``loadcache`` (a pass takes the specs
        of the phases it plans from it)."""
        tree = self.repo.tree("HEAD")
        revision = self.repo.last_change("HEAD", exclude=OWNED)
        return tree, loadcache.desired(self.project_dir, revision, lambda: load_desired(tree, revision=revision))

    def check(self) -> None:
        """Check the tree again (after a pull brought new files)."""
        check_tree(self.project_dir, CONFINED_DIRS, CONFINED_FILES)


@contextlib.contextmanager
def open_project(project_dir: Path, locking: Locking = Locking.TAKE) -> Iterator[Session]:
    project_dir = project_dir.resolve()
    check_tree(project_dir, CONFINED_DIRS, CONFINED_FILES)
    with contextlib.ExitStack() as stack:
        if locking is not Locking.NONE:
            stack.enter_context(ProjectLock(project_dir) if locking is Locking.TAKE else waiting_lock(project_dir))
            crash_point("after_lock")
            # A write of ours killed half-way leaves its temporary file: what a dead (or long
            # gone) writer left goes; a live writer's fresh file is left alone.
            sweep_temp_files(project_dir, WRITTEN_DIRS)
        yield Session(project_dir, stack.enter_context(ProjectRepo(project_dir)))
