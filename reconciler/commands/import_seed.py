"""``reconcile import-seed [DIR] [--project NAME] [--target NAME] [--force]``.

Converts a project of the seed system in place (see ``reconciler.seedimport``). It never loses a
file: it refuses (exit 2, naming the file, writing nothing) when ``config/reconciler.yaml`` or
``dispatch/imported.yaml`` exists, unless ``--force``; the original ``dispatch/state.json`` is kept
as ``dispatch/state.seed.json`` (written once, never replaced).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from reconciler import scaffold
from reconciler.commands.common import EXIT_OK, chosen_dir, dir_option, exit_codes, json_option, require_dir
from reconciler.errors import ConfigError
from reconciler.liveline import busy
from reconciler.model.spec import ID_PATTERN
from reconciler.schemas import SchemaMissing
from reconciler.seedimport import SeedImportError, plan_import


@click.command("import-seed")
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@dir_option
@click.option("--project", default=None, help="Project name (default: project_name from config/config.md).")
@click.option(
    "--target",
    "local_target",
    default="local",
    show_default=True,
    help="Name of the local target made when no seed entry names a host.",
)
@click.option("--force", is_flag=True, help="Replace config/reconciler.yaml and dispatch/imported.yaml.")
@json_option
@exit_codes
def import_seed(
    directory: Path | None, dir_option: Path | None, project: str | None, local_target: str, force: bool, as_json: bool
) -> int:
    """Convert the seed project in DIRECTORY (config/config.md, dispatch/state.json) to reconciler files."""
    where = chosen_dir(click.get_current_context(), directory, dir_option)
    require_dir(where)
    for label, value in (("project", project), ("target", local_target)):
        if value is not None and not re.fullmatch(ID_PATTERN, value):
            raise ConfigError(f"invalid {label} name {value!r}: use letters, digits, _ . -")
    try:
        with busy(f"reading the seed project in {where}"):
            plan = plan_import(where, project, local_target)
    except (SeedImportError, SchemaMissing, OSError) as exc:
        raise ConfigError(str(exc)) from exc
    existing = scaffold.conflicts(where, plan.files)
    if existing and not force:
        listed = "; ".join(f"{where / path} exists" for path in existing)
        raise ConfigError(f"{listed}: nothing was written (--force replaces them)")
    written = scaffold.write(where, plan.files)
    if as_json:
        doc = {
            "project": plan.project,
            "directory": str(where),
            "written": [str(p) for p in written],
            "notes": list(plan.notes),
            "entries": plan.entries,
            "specs": plan.specs,
        }
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
        return EXIT_OK
    for path in written:
        click.echo(f"wrote {where / path}")
    for note in plan.notes:
        click.echo(f"note: {note}")
    click.echo(
        f"imported {plan.entries} seed entries as {plan.specs} experiment specs (project {plan.project!r}).\n"
        "Review the targets in config/reconciler.yaml, then: reconcile validate && reconcile plan\n"
        "Commit the converted dispatch/state.json once by hand (the status guard refuses hand edits):\n"
        "  RECONCILER_ALLOW_STATUS_EDIT=1 git commit -m 'import seed project'"
    )
    return EXIT_OK
