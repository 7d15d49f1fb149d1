"""The ``reconcile`` command line: thin commands that return exit codes.

``reconcile`` alone watches (a pass every poll interval and on new commits); ``reconcile --once``
runs one pass, for cron. Exit codes: ``reconciler.commands.common`` (0 converged or progressing, 1
something needs a person or changes are pending, 2 invalid input, 3 a bug of ours, 75 the project
lock is held, 124 a wait timed out, 130 interrupted). ``-C DIR`` given before a subcommand is that
subcommand's project.
"""

from __future__ import annotations

import functools
import glob
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from reconciler import __version__
from reconciler.commands.common import EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, EXIT_STALLED, run_guarded
from reconciler.commands.display import say


class _LazyGroup(click.Group):
    """Each subcommand's module is imported when that command runs (all of them for ``--help``):
    ``reconcile --once`` from cron and the ``validate``/``guard`` hooks on every commit do not
    pay for the dashboard, the SSH library or the status tables."""

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:  # type: ignore[override]
        """As click's, but a usage error is one line (``error: ...``; JSON on stderr with ``--json``)
        and exits 2."""
        if extra.get("standalone_mode", True) is False:
            return super().main(args, prog_name, **extra)
        extra.pop("standalone_mode", None)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(argv, prog_name, standalone_mode=False, **extra)
        except click.UsageError as exc:
            path = exc.ctx.command_path if exc.ctx is not None else "reconcile"
            message = f"{exc.format_message()} (see `{path} --help`)"
            if "--json" in argv:
                doc = {"error": {"exit": EXIT_INVALID, "kind": "usage", "message": message}}
                click.echo(json.dumps(doc, sort_keys=True), err=True)
            else:
                click.echo(f"error: {message}", err=True)
            sys.exit(EXIT_INVALID)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)

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
        given = [flag for flag, on in (("--once", once), ("--until-done", until_done)) if on]
        given += [f"--{'' if v else 'no-'}{name}" for name, v in (("pull", pull), ("push", push)) if v is not None]
        if given:
            raise click.UsageError(
                f"{', '.join(given)} belong(s) to a pass, not to `reconcile {ctx.invoked_subcommand}`: "
                f"run `reconcile {' '.join(given)}` and `reconcile {ctx.invoked_subcommand}` separately",
                ctx,
            )
        return
    dirs = _expand(projects)
    if once:
        sys.exit(max(run_guarded(functools.partial(_once, d, pull, push), project_dir=d) for d in dirs))
    from reconciler.watch import watch

    sys.exit(run_guarded(lambda: watch(dirs, until_settled=until_done)))


def _once(project: Path, pull: bool | None, push: bool | None) -> int:
    from reconciler.commands.common import require_dir
    from reconciler.engine import reconcile_once

    require_dir(project)

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
    "logs": ("logs", "logs"),
    "init": ("init", "init"),
    "import-seed": ("import_seed", "import_seed"),
    "guard": ("guard", "guard"),
    "resolve": ("resolve", "resolve"),
    "env-check": ("env_check", "env_check"),
    "probe-vram": ("probe_vram", "probe_vram_command"),
    "export": ("export", "export_command"),
    "dashboard": ("dashboard", "dashboard_command"),
    "wait": ("wait", "wait"),
}
"""Subcommand -> (module in ``reconciler.commands``, attribute)."""
