"""The ``reconcile`` command line: thin commands that return exit codes.

Exit codes: 0 converged or valid, 1 something stalled or errored (or ``plan``: changes pending),
2 invalid input, 75 the project lock is held, 130 interrupted.
"""

from __future__ import annotations

import sys

import click

from reconciler import __version__

EXIT_OK = 0
EXIT_STALLED = 1
EXIT_INVALID = 2
EXIT_LOCKED = 75
EXIT_INTERRUPTED = 130


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconcile")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Reconcile ML experiments from a git repository's committed files."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        sys.exit(EXIT_OK)


def _register() -> None:
    """Attach every subcommand (kept in ``reconciler.commands``)."""


_register()
