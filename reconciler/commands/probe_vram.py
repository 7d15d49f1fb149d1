"""``reconcile probe-vram EXP``: measure an experiment's GPU memory on a target and record it
(``reconciler.vramprobe``). Exit 0 measured and committed, 1 nothing measured (no GPU, the run
used none or failed first), 2 invalid input, 75 the lock is held."""

from __future__ import annotations

import json
from pathlib import Path

import click

from reconciler.commands.common import EXIT_OK, EXIT_STALLED, exit_codes, json_option, project_option
from reconciler.commands.complete import experiment_ids, target_names
from reconciler.commands.display import say
from reconciler.vramprobe import probe_vram


@click.command("probe-vram")
@click.argument("experiment", shell_complete=experiment_ids)
@click.option(
    "--target",
    "target",
    default=None,
    shell_complete=target_names,
    help="run it on this target (default: the first with a GPU)",
)
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True, help="the run's step limit")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="stop the run after this many seconds (a script that ignores --max-steps)",
)
@project_option
@json_option
@exit_codes
def probe_vram_command(
    experiment: str, target: str | None, steps: int, timeout: float, project_dir: Path, as_json: bool
) -> int:
    """Run EXPERIMENT (an id, or a base id: its first seed) briefly on a GPU and record its peak
    GPU memory in experiments/vram.json (committed); placement then reserves the measurement.
    Exit 0 measured, 1 nothing measured (no GPU, or the run used none), 2 invalid input."""
    quiet = as_json
    probed = probe_vram(
        project_dir, experiment, target, steps=steps, timeout=timeout, say=lambda m: None if quiet else say(m)
    )
    code = EXIT_STALLED if probed.measurement is None else EXIT_OK
    if as_json:
        doc = {
            "exp_id": probed.exp_id,
            "target": probed.target,
            "measurement": probed.measurement.to_dict() if probed.measurement is not None else None,
            "commit": probed.commit,
            "line": probed.line,
            "log_tail": list(probed.log_tail[-20:]),
        }
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
        return code
    say(probed.line)
    if probed.measurement is None:
        for line in probed.log_tail[-5:]:
            say(f"  | {line}")
        return code
    if probed.commit:
        click.echo(f"recorded in experiments/vram.json, committed {probed.commit[:10]}")
    return code
