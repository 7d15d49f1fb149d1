"""The project's git repository: the only package that imports GitPython.

Read the committed tree (``ProjectRepo.tree`` -> ``GitTree``), write and commit the status files
(``commit_status``: only the reconciler's paths, only on change), tag phases, pull (fast-forward
only) and push (bounded fetch-rebase-retry), and rebuild an experiment's history from the log.
Every GitPython or git failure leaves this package as ``reconciler.errors.GitStoreError``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.gitstore.history import Transition, Unreadable, experiment_history
    from reconciler.gitstore.remote import fetch, pull_ff, push
    from reconciler.gitstore.repo import ProjectRepo
    from reconciler.gitstore.tree import GitTree
    from reconciler.gitstore.writer import commit_message, commit_status, tag

_HOME = {
    "GitTree": "tree",
    "ProjectRepo": "repo",
    "Transition": "history",
    "Unreadable": "history",
    "commit_message": "writer",
    "commit_status": "writer",
    "experiment_history": "history",
    "fetch": "remote",
    "pull_ff": "remote",
    "push": "remote",
    "tag": "writer",
}
"""Name -> its module: imported when first used, so that ``reconcile status`` (which needs only
the repository and its tree) does not load the writer, the remote and the history walk."""


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"reconciler.gitstore.{_HOME[name]}"), name)
    raise AttributeError(f"module 'reconciler.gitstore' has no attribute {name!r}")


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
