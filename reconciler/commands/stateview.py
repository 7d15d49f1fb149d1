"""The recorded state as the reading commands show it (``status``, ``logs``, ``wait``): the committed
``dispatch/state.json`` of a revision with, at HEAD, the newest volatile values the last pass kept
in ``.reconciler/`` (``reconciler.model.volatile``). No lock, no network, no write."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reconciler import loadcache
from reconciler.archivestore import with_archived
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.gitstore.repo import ProjectRepo
from reconciler.gitstore.tree import GitTree
from reconciler.loadcache import paused_gc
from reconciler.model.status import StateFile, StatusEntry
from reconciler.statestore import STATE, current_state


def read_state(
    project_dir: Path,
    rev: str = "HEAD",
    also: Callable[[ProjectRepo, GitTree], None] | None = None,
    *,
    archived: bool | Callable[[StateFile], bool] = False,
) -> StateFile:
    """The state as of ``rev``; ``also`` reads more from the same repository and tree.
    ``archived`` (or a function of the live state saying so): with the entries of the archived
    phases (``dispatch/archive/``, committed at ``rev``) as well."""
    with ProjectRepo(project_dir) as repo, paused_gc():
        tree = repo.tree(rev)
        data = tree.read_bytes(STATE)
        if also is not None:
            also(repo, tree)
        try:  # parsed once per content (``loadcache``: what the last pass wrote is kept parsed)
            if not data:
                state = StateFile(project="")
            elif rev == "HEAD":
                state = loadcache.state(project_dir, data, StateFile.loads)
            else:  # an older revision: not kept (the cache holds the newest)
                state = StateFile.loads(data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ReconcilerError(f"{STATE} at {rev} is corrupt ({exc}); the next pass restores it") from exc
        if state.archived and (archived(state) if callable(archived) else archived):
            state = with_archived(None, state, tree.read_bytes)
    return current_state(project_dir, state) if rev == "HEAD" else state


def entry_of(state: StateFile, exp_id: str) -> StatusEntry:
    """The entry of ``exp_id``; an unknown id is invalid input (exit 2)."""
    entry = state.get(exp_id)
    if entry is None:
        raise ConfigError(f"no experiment {exp_id!r} recorded: `reconcile status` lists them")
    return entry
