"""The ``reconcile`` command line: thin commands that return exit codes.

``reconcile`` alone watches (a pass every poll interval and on new commits); ``reconcile --once``
runs one pass, for cron. Exit codes: 0 converged or progressing, 1 something stalled or errored
(``plan``: changes pending), 2 invalid input, 75 the project lock is held, 130 interrupted.
"""

from __future__ import annotations

import functools
import glob
import importlib
import sys
from pathlib import Path

import click

from reconciler import __version__
from reconciler.commands.common import EXIT_OK, EXIT_STALLED, run_guarded
from reconciler.commands.display import say


class _LazyGroup(click.Group):
    """Each subcommand's module is imported when that command runs (all of them for ``--help``):
    ``reconcile --once`` from cron and the ``validate``/``guard`` hooks on every commit do not
    pay for the dashboard, the SSH library or the status tables."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _COMMANDS:
            module, attribute = _COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(f"reconciler.commands.{module}"), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconcile")
@click.option("--once", is_flag=True, help="Run one pass and exit (for cron).")
@click.option(
    "-C",
    "--project",
    "projects",
    multiple=True,
    help="Project directory (repeatable; a glob serves several projects). Default: the current directory.",
)
@click.option(
    "--until-done",
    is_flag=True,
    help="Watch until nothing is left in flight; exit 0 when every experiment is done, 1 otherwise.",
)
@click.option("--pull/--no-pull", default=None, help="Fast-forward from the remote first (default: config git.pull).")
@click.option("--push/--no-push", default=None, help="Push status commits (default: config git.push).")
@click.pass_context
def main(
    ctx: click.Context, once: bool, until_done: bool, projects: tuple[str, ...], pull: bool | None, push: bool | None
) -> None:
    """Reconcile ML experiments from a git repository's committed files."""
    if ctx.invoked_subcommand is not None:
        return
    dirs = _expand(projects)
    if once:
        sys.exit(max(run_guarded(functools.partial(_once, d, pull, push)) for d in dirs))
    from reconciler.watch import watch

    sys.exit(run_guarded(lambda: watch(dirs, until_settled=until_done)))


def _once(project: Path, pull: bool | None, push: bool | None) -> int:
    from reconciler.engine import reconcile_once

    result = reconcile_once(project, pull=pull, push_changes=push, log=lambda m: say(m, err=True))
    for event in result.events:
        say(event.line)
    for name, error in result.unreachable.items():
        say(f"{name}: unreachable ({error})", err=True)
    if result.commit:
        click.echo(f"committed {result.commit[:10]}")
    return EXIT_STALLED if result.stalled else EXIT_OK


def _expand(patterns: tuple[str, ...]) -> list[Path]:
    if not patterns:
        return [Path(".")]
    out: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        out.extend(Path(m) for m in matches if Path(m).is_dir())
    return out or [Path(p) for p in patterns]


_COMMANDS = {
    "validate": ("validate", "validate"),
    "plan": ("plan", "plan"),
    "status": ("status", "status"),
    "log": ("log", "log"),
    "init": ("init", "init"),
    "import-seed": ("import_seed", "import_seed"),
    "guard": ("guard", "guard"),
    "resolve": ("resolve", "resolve"),
    "env-check": ("env_check", "env_check"),
    "probe-vram": ("probe_vram", "probe_vram_command"),
    "export": ("export", "export_command"),
    "dashboard": ("dashboard", "dashboard_command"),
}
"""Subcommand -> (module in ``reconciler.commands``, attribute)."""
