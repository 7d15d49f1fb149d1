"""``reconcile export [-C DIR] [--allow-partial] [--json] [--no-commit]``: write
``experiments/results/all_results.csv``, the design tables as markdown and
``experiments/results/pilot_synthesis.md``, and commit them (``reconciler.export.writer``).

Exit codes: 0 exported (complete); 1 incomplete runs (listed; nothing written unless
``--allow-partial``, which writes and still exits 0); 2 invalid desired state; 75 the lock was not
free within a minute.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from reconciler.commands.common import EXIT_OK, EXIT_STALLED, exit_codes, project_option
from reconciler.commands.display import say
from reconciler.export.synthesis import Criteria
from reconciler.export.writer import export_project
from reconciler.liveline import busy


@click.command("export")
@project_option
@click.option(
    "--allow-partial", is_flag=True, help="Export although runs are held, failed or missing (they are listed)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome (guard, files, tables) as JSON.")
@click.option("--commit/--no-commit", default=True, show_default=True, help="Commit the exported files.")
@click.option(
    "--min-improvement",
    type=float,
    default=0.01,
    show_default=True,
    help="Pilot pass: least Δ over the best baseline, in the metric's units.",
)
@click.option(
    "--noise-floor", type=float, default=None, help="Pilot pass: least Δ (default: the best baseline's inter-seed std)."
)
@exit_codes
def export_command(
    project_dir: Path,
    allow_partial: bool,
    as_json: bool,
    commit: bool,
    min_improvement: float,
    noise_floor: float | None,
) -> int:
    """Export all_results.csv, the design tables and the pilot synthesis; commit them."""
    criteria = Criteria(min_improvement=min_improvement, noise_floor=noise_floor)
    with busy("exporting results, design tables and the pilot synthesis"):
        result = export_project(project_dir, allow_partial=allow_partial, commit=commit, criteria=criteria)
    guard = result.completeness
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, sort_keys=True))
    else:
        for warning in result.warnings:
            say(f"warning: {warning}", err=True)
        for line in guard.lines():
            say(line, err=not result.written)
        click.echo(guard.summary())
        for path in result.written:
            click.echo(f"wrote {path}")
        if result.synthesis is not None and result.written:
            click.echo(f"pilot synthesis: {result.synthesis.recommendation}")
        if result.commit:
            click.echo(f"committed {result.commit[:10]}")
        if not result.written:
            click.echo("nothing written: runs are incomplete (see above); --allow-partial exports anyway", err=True)
    return EXIT_OK if result.written else EXIT_STALLED
