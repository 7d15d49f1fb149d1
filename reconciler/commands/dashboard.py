"""``reconcile dashboard``: serve the project's live web page (``reconciler.dashboard``)."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.commands.common import EXIT_INVALID, EXIT_OK, exit_codes, project_option
from reconciler.dashboard.auth import is_loopback


@click.command("dashboard")
@project_option
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="0: any free port.")
@click.option(
    "--bind",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback requires a token (generated and printed once).",
)
@click.option("--token", envvar="RECONCILER_DASHBOARD_TOKEN", help="The token to require (default: generated).")
@exit_codes
def dashboard_command(project_dir: Path, port: int, bind: str, token: str | None) -> int:
    """Serve design tables, runs, GPUs, escalations and results of the project, live."""
    from reconciler.dashboard import serve

    if token is not None and len(token) < 16:
        click.echo("--token: use at least 16 characters", err=True)
        return EXIT_INVALID
    if not is_loopback(bind):
        click.echo(f"listening on {bind}: every request needs the token", err=True)
    try:
        serve(project_dir, bind=bind, port=port, token=token, announce=click.echo)
    except OSError as exc:
        click.echo(f"cannot listen on {bind}:{port}: {exc}", err=True)
        return EXIT_INVALID
    return EXIT_OK
