"""The ``reconcile`` command line: thin commands that return exit codes.

``reconcile`` alone watches (a pass every poll interval and on new commits); ``reconcile --once``
runs one pass, for cron. Exit codes: 0 converged or progressing, 1 something stalled or errored
(``plan``: changes pending), 2 invalid input, 75 the project lock is held, 130 interrupted.
"""

from __future__ import annotations

import functools
import glob
import sys
from pathlib import Path

import click

from reconciler import __version__
from reconciler.commands.common import EXIT_OK, EXIT_STALLED, run_guarded


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
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

    result = reconcile_once(project, pull=pull, push_changes=push)
    for event in result.events:
        click.echo(event.line)
    for name, error in result.unreachable.items():
        click.echo(f"{name}: unreachable ({error})", err=True)
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


def _register() -> None:
    """Attach every subcommand (kept in ``reconciler.commands``, one module each)."""
    import importlib

    for module, name in _COMMANDS:
        try:
            command = getattr(importlib.import_module(f"reconciler.commands.{module}"), name)
        except ModuleNotFoundError as exc:  # a command module being written in parallel
            if exc.name != f"reconciler.commands.{module}":
                raise
            continue
        main.add_command(command)


_COMMANDS = (
    ("validate", "validate"),
    ("plan", "plan"),
    ("status", "status"),
    ("log", "log"),
    ("init", "init"),
    ("import_seed", "import_seed"),
    ("guard", "guard"),
    ("resolve", "resolve"),
    ("env_check", "env_check"),
    ("export", "export_command"),
    ("dashboard", "dashboard_command"),
)


_register()
