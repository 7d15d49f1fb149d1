"""``reconcile log EXP``: one experiment's transitions, rebuilt from git history."""

from __future__ import annotations

import json
from pathlib import Path

import click

from reconciler.commands.common import EXIT_OK, exit_codes, json_option, project_option
from reconciler.commands.complete import experiment_ids
from reconciler.commands.display import terminal_safe
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.gitstore.history import Transition, Unreadable, experiment_history
from reconciler.gitstore.repo import ProjectRepo
from reconciler.load import load_desired
from reconciler.statestore import STATE


@click.command("log")
@project_option
@click.argument("exp_id", shell_complete=experiment_ids)
@json_option
@exit_codes
def log(project_dir: Path, exp_id: str, as_json: bool) -> int:
    """Print EXP_ID's transitions: when, which commit, from -> to, where, and command changes.
    Exit 0 (also for an experiment with no transition recorded yet); 2 for an unknown experiment."""
    with ProjectRepo(project_dir) as repo:
        repo.head_sha()  # a repository with no commit is no project yet (exit 2, with what to do)
        items = list(experiment_history(repo, exp_id, state_path=STATE))
        if not any(isinstance(i, Transition) for i in items) and not _known(repo, exp_id):
            raise ConfigError(f"no experiment {exp_id!r} in {project_dir}: `reconcile status` lists them")
    if as_json:
        click.echo(json.dumps({"exp_id": exp_id, "transitions": [_doc(i) for i in items]}, indent=2))
        return EXIT_OK
    for item in items:
        click.echo(terminal_safe(_line(item)))
    if not items:
        click.echo(terminal_safe(f"{exp_id}: no transition recorded yet (no pass since it was added)"), err=True)
    return EXIT_OK


def _known(repo: ProjectRepo, exp_id: str) -> bool:
    """In the committed spec (an experiment added but never recorded yet)."""
    try:
        with repo.tree("HEAD") as tree:
            desired = load_desired(tree)
    except ReconcilerError:
        return False
    return desired.spec(exp_id) is not None


def _doc(item: Transition | Unreadable) -> dict[str, object]:
    if isinstance(item, Unreadable):
        return {
            "commit": item.commit_sha,
            "time": item.commit_time,
            "unreadable": item.reason,
            "subject": item.message_line,
        }
    return {
        "commit": item.commit_sha,
        "time": item.commit_time,
        "from": item.from_status.value if item.from_status else None,
        "to": item.to_status.value if item.to_status else None,
        "attempt": item.attempt,
        "target": item.target,
        "host": item.host,
        "gpu": item.gpu,
        "retry_count": item.retry_count,
        "failure_class": item.failure_class,
        "command_changed": item.command_changed,
        "subject": item.message_line,
    }


def _line(item: Transition | Unreadable) -> str:
    if isinstance(item, Unreadable):
        return f"{item.commit_time}  {item.commit_sha[:10]}  (state unreadable: {item.reason})"
    before = item.from_status.value if item.from_status else "(new)"
    after = item.to_status.value if item.to_status else "(removed)"
    where = ""
    if item.target:
        where = f"  {item.target}" + (f" gpu {item.gpu}" if item.gpu is not None else "")
    extra = []
    if item.attempt:
        extra.append(f"attempt {item.attempt}")
    if item.failure_class:
        extra.append(item.failure_class)
    if item.command_changed:
        extra.append("command changed")
    tail = f"  [{', '.join(extra)}]" if extra else ""
    return f"{item.commit_time}  {item.commit_sha[:10]}  {before} -> {after}{where}{tail}  {item.message_line}"
