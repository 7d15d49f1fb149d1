"""``reconcile init [DIR] [--project NAME] [--force] [--json]``: scaffold a new research project.

Writes a config with one local target, one dispatch file with a stand-in experiment (and its
script), ``dispatch/decisions.yaml``, copies of the schemas in ``config/schemas/`` (the files'
``$schema`` lines point there), a ``.pre-commit-config.yaml``, a GitHub workflow, and the
reconciler's lines in ``.gitignore`` (merged into an existing one). It never replaces an existing
file unless ``--force``: it checks every path first and writes nothing when one exists (exit 2).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from reconciler import scaffold
from reconciler.commands.common import EXIT_OK, chosen_dir, dir_option, exit_codes, json_option
from reconciler.errors import ConfigError
from reconciler.model.spec import ID_PATTERN
from reconciler.schemas import SchemaMissing


@click.command("init")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@dir_option
@click.option("--project", "project", default=None, help="Project name (default: the directory's name).")
@click.option("--force", is_flag=True, help="Replace files that exist already.")
@json_option
@exit_codes
def init(directory: Path | None, dir_option: Path | None, project: str | None, force: bool, as_json: bool) -> int:
    """Create a new reconciler project in DIRECTORY (default: the current directory)."""
    where = chosen_dir(click.get_current_context(), directory, dir_option)
    name = project or scaffold.project_name(where.resolve().name)
    if not re.fullmatch(ID_PATTERN, name):
        raise ConfigError(f"invalid project name {name!r}: use letters, digits, _ . - (--project NAME)")
    try:
        files = scaffold.plan_init(name)
    except (SchemaMissing, OSError) as exc:
        raise ConfigError(f"cannot scaffold: {exc}") from exc
    existing = scaffold.conflicts(where, files)
    if existing and not force:
        listed = "; ".join(f"{where / path} exists" for path in existing)
        raise ConfigError(f"{listed}: nothing was written (--force replaces them)")
    written = scaffold.write(where, files)
    if as_json:
        doc = {"project": name, "directory": str(where), "written": [str(p) for p in written]}
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
        return EXIT_OK
    for path in written:
        click.echo(f"wrote {where / path}")
    click.echo(
        f"\nproject {name!r} is ready. Next:\n"
        f"  cd {where}\n"
        "  git init && git add -A && git commit -m 'reconciler project'   # if not a repository yet\n"
        "  reconcile validate && reconcile plan\n"
        "  pre-commit install   # optional: check files before each commit"
    )
    return EXIT_OK
