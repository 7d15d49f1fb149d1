"""Shell completion of a project's experiment ids and target names (``shell_complete=`` callbacks).

Click calls these while a shell completes a ``reconcile`` command line (``_RECONCILE_COMPLETE``;
README, "Shell completion"). They read the project named by the command's ``-C/--project`` option
(``.`` without it), change nothing, and never raise or print: any error, a missing project
included, gives no completions.

- ``experiment_ids``: the ids in ``dispatch/state.json`` (as on disk, read leniently) and the ids
  the committed dispatch files define (HEAD, seeds expanded; entries with problems are skipped).
- ``target_names``: the targets of ``config/reconciler.yaml`` (as on disk), each with its kind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem

CONFIG = "config/reconciler.yaml"


def project_dir(ctx: click.Context | None) -> Path:
    """The ``project_dir`` parameter of the command being completed, else the one directory given
    to the group before it (``reconcile -C DIR log <TAB>``: ``projects``), else ``.``."""
    node = ctx
    while node is not None:
        value = node.params.get("project_dir")
        if isinstance(value, (str, os.PathLike)) and os.fspath(value):
            return Path(value)
        projects = node.params.get("projects")
        if isinstance(projects, (list, tuple)) and len(projects) == 1 and isinstance(projects[0], str):
            return Path(projects[0])
        node = node.parent
    return Path(".")


def experiment_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Experiment ids of the project that start with ``incomplete``, sorted."""
    try:
        from reconciler.load.state import recorded_ids  # only when completing: the commands stay light
        from reconciler.load.tree import WorkTree

        root = project_dir(ctx)
        if not root.is_dir():
            return []
        ids = recorded_ids(WorkTree(root)) | _committed_ids(root)
        return [CompletionItem(i) for i in sorted(ids) if i.startswith(incomplete)]
    except Exception:  # completion must never fail the shell
        return []


def target_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Target names in the project's config that start with ``incomplete``, sorted, with their kind."""
    try:
        import yaml

        text = (project_dir(ctx) / CONFIG).read_text(encoding="utf-8")
        config: Any = yaml.safe_load(text)
        targets = config.get("targets") if isinstance(config, dict) else None
        if not isinstance(targets, dict):
            return []
        out = []
        for name, target in sorted((n, t) for n, t in targets.items() if isinstance(n, str)):
            if name.startswith(incomplete):
                kind = target.get("kind") if isinstance(target, dict) else None
                out.append(CompletionItem(name, help=kind if isinstance(kind, str) else None))
        return out
    except Exception:  # completion must never fail the shell
        return []


def _committed_ids(root: Path) -> set[str]:
    """Ids the dispatch files define at HEAD; empty outside a repository or before a commit."""
    try:
        from reconciler.gitstore.repo import ProjectRepo
        from reconciler.load.sources import read_sources
        from reconciler.load.specs import build_specs

        with ProjectRepo(root) as repo, repo.tree("HEAD") as tree:
            sources = read_sources(tree)
            return {located.spec.id for checked in sources.dispatch for located in build_specs(checked)[0]}
    except Exception:
        return set()
