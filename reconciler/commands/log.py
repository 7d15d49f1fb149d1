"""``reconcile log EXP``: one experiment's transitions, rebuilt from git history."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.commands.common import EXIT_OK, EXIT_STALLED, exit_codes, project_option
from reconciler.commands.display import terminal_safe
from reconciler.gitstore.history import Transition, Unreadable, experiment_history
from reconciler.gitstore.repo import ProjectRepo
from reconciler.statestore import STATE


@click.command("log")
@project_option
@click.argument("exp_id")
@exit_codes
def log(project_dir: Path, exp_id: str) -> int:
    """Print EXP_ID's transitions: when, which commit, from -> to, where, and command changes."""
    found = False
    with ProjectRepo(project_dir) as repo:
        for item in experiment_history(repo, exp_id, state_path=STATE):
            found = found or isinstance(item, Transition)
            click.echo(terminal_safe(_line(item)))
    if not found:
        click.echo(terminal_safe(f"no recorded transitions for {exp_id}"), err=True)
        return EXIT_STALLED
    return EXIT_OK


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
