"""The project's git repository: the only package that imports GitPython.

Read the committed tree (``ProjectRepo.tree`` -> ``GitTree``), write and commit the status files
(``commit_status``: only the reconciler's paths, only on change), tag phases, pull (fast-forward
only) and push (bounded fetch-rebase-retry), and rebuild an experiment's history from the log.
Every GitPython or git failure leaves this package as ``reconciler.errors.GitStoreError``.
"""

from __future__ import annotations

from reconciler.gitstore.history import Transition, Unreadable, experiment_history
from reconciler.gitstore.remote import fetch, pull_ff, push
from reconciler.gitstore.repo import ProjectRepo
from reconciler.gitstore.tree import GitTree
from reconciler.gitstore.writer import commit_message, commit_status, tag

__all__ = [
    "GitTree",
    "ProjectRepo",
    "Transition",
    "Unreadable",
    "commit_message",
    "commit_status",
    "experiment_history",
    "fetch",
    "pull_ff",
    "push",
    "tag",
]
