"""``reconcile probe-vram EXP``: measure an experiment's GPU memory on a target and record it
(``reconciler.vramprobe``). Exit 0 measured and committed, 1 nothing measured (no GPU, the run
used none or failed first), 2 invalid input, 75 the lock is held."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.commands.common import EXIT_OK, EXIT_STALLED, exit_codes, project_option
from reconciler.commands.display import say
from reconciler.vramprobe import probe_vram


@click.command("probe-vram")
@click.argument("experiment")
@click.option("--target", "target", default=None, help="run it on this target (default: the first with a GPU)")
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True, help="the run's step limit")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="stop the run after this many seconds (a script that ignores --max-steps)",
)
@project_option
@exit_codes
def probe_vram_command(experiment: str, target: str | None, steps: int, timeout: float, project_dir: Path) -> int:
    """Run EXPERIMENT (an id, or a base id: its first seed) briefly on a GPU and record its peak
    GPU memory in experiments/vram.json (committed); placement then reserves the measurement.
    Exit 0 measured, 1 nothing measured (no GPU, or the run used none), 2 invalid input."""
    probed = probe_vram(project_dir, experiment, target, steps=steps, timeout=timeout, say=say)
    say(probed.line)
    if probed.measurement is None:
        for line in probed.log_tail[-5:]:
            say(f"  | {line}")
        return EXIT_STALLED
    if probed.commit:
        click.echo(f"recorded in experiments/vram.json, committed {probed.commit[:10]}")
    return EXIT_OK
