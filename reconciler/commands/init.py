"""``reconcile init [DIR] [--project NAME] [--force]``: scaffold a new research project.

Writes a config with one local target, one dispatch file with a stand-in experiment (and its
script), ``dispatch/decisions.yaml``, copies of the schemas in ``config/schemas/`` (the files'
``$schema`` lines point there), a ``.pre-commit-config.yaml``, a GitHub workflow, and the
reconciler's lines in ``.gitignore`` (merged into an existing one). It never replaces an existing
file unless ``--force``: it checks every path first and writes nothing when one exists (exit 2).
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


@click.command("init")
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--project", "project", default=None, help="Project name (default: the directory's name).")
@click.option("--force", is_flag=True, help="Replace files that exist already.")
def init(directory: Path, project: str | None, force: bool) -> None:
    """Create a new reconciler project in DIRECTORY (default: the current directory)."""
    name = project or scaffold.project_name(directory.resolve().name)
    if not re.fullmatch(ID_PATTERN, name):
        click.echo(f"reconcile init: invalid project name {name!r} (letters, digits, _ . -)", err=True)
        sys.exit(EXIT_INVALID)
    try:
        files = scaffold.plan_init(name)
    except (SchemaMissing, OSError) as exc:
        click.echo(f"reconcile init: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    existing = scaffold.conflicts(directory, files)
    if existing and not force:
        for path in existing:
            click.echo(f"reconcile init: {directory / path} exists; not overwriting it", err=True)
        click.echo("nothing was written; use --force to replace these files", err=True)
        sys.exit(EXIT_INVALID)
    written = scaffold.write(directory, files)
    for path in written:
        click.echo(f"wrote {directory / path}")
    click.echo(
        f"\nproject {name!r} is ready. Next:\n"
        f"  cd {directory}\n"
        "  git init && git add -A && git commit -m 'reconciler project'   # if not a repository yet\n"
        "  reconcile validate && reconcile plan\n"
        "  pre-commit install   # optional: check files before each commit"
    )
