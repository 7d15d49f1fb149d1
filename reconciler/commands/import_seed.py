"""``reconcile import-seed [DIR] [--project NAME] [--target NAME] [--force]``.

Converts a project of the seed system in place (see ``reconciler.seedimport``). It never loses a
file: it refuses (exit 2, naming the file, writing nothing) when ``config/reconciler.yaml`` or
``dispatch/imported.yaml`` exists, unless ``--force``; the original ``dispatch/state.json`` is kept
as ``dispatch/state.seed.json`` (written once, never replaced).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from reconciler import scaffold
from reconciler.commands.common import EXIT_INVALID
from reconciler.model.spec import ID_PATTERN
from reconciler.schemas import SchemaMissing
from reconciler.seedimport import SeedImportError, plan_import


@click.command("import-seed")
@click.argument("directory", default=".", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--project", default=None, help="Project name (default: project_name from config/config.md).")
@click.option(
    "--target",
    "local_target",
    default="local",
    show_default=True,
    help="Name of the local target made when no seed entry names a host.",
)
@click.option("--force", is_flag=True, help="Replace config/reconciler.yaml and dispatch/imported.yaml.")
def import_seed(directory: Path, project: str | None, local_target: str, force: bool) -> None:
    """Convert the seed project in DIRECTORY (config/config.md, dispatch/state.json) to reconciler files."""
    for label, value in (("project", project), ("target", local_target)):
        if value is not None and not re.fullmatch(ID_PATTERN, value):
            click.echo(f"reconcile import-seed: invalid {label} name {value!r} (letters, digits, _ . -)", err=True)
            sys.exit(EXIT_INVALID)
    try:
        plan = plan_import(directory, project, local_target)
    except (SeedImportError, SchemaMissing, OSError) as exc:
        click.echo(f"reconcile import-seed: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    existing = scaffold.conflicts(directory, plan.files)
    if existing and not force:
        for path in existing:
            click.echo(f"reconcile import-seed: {directory / path} exists; not overwriting it", err=True)
        click.echo("nothing was written; use --force to replace these files", err=True)
        sys.exit(EXIT_INVALID)
    for path in scaffold.write(directory, plan.files):
        click.echo(f"wrote {directory / path}")
    for note in plan.notes:
        click.echo(f"note: {note}")
    click.echo(
        f"imported {plan.entries} seed entries as {plan.specs} experiment specs (project {plan.project!r}).\n"
        "Review the targets in config/reconciler.yaml, then: reconcile validate && reconcile plan\n"
        "Commit the converted dispatch/state.json once by hand (the status guard refuses hand edits):\n"
        "  RECONCILER_ALLOW_STATUS_EDIT=1 git commit -m 'import seed project'"
    )
