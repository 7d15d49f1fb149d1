"""``reconcile plan``: what a pass would do now; changes nothing (no lock, no write, no commit)."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.commands.common import EXIT_OK, EXIT_STALLED, exit_codes, project_option
from reconciler.commands.display import say, terminal_safe
from reconciler.engine import reconcile_once
from reconciler.model.actions import Record


@click.command("plan")
@project_option
@exit_codes
def plan(project_dir: Path) -> int:
    """Print what a pass would do, and what waits and why. Exit 0: no action due (experiments may
    still wait: they are listed); 1: changes pending; 2: invalid input."""
    result = reconcile_once(project_dir, dry_run=True, log=lambda m: say(m, err=True))
    p = result.plan
    for name, error in result.unreachable.items():
        say(f"! {name}: unreachable ({error})")
    for action in p.io_actions:
        say(f"+ {action.describe()}")
    for action in p.actions:
        if isinstance(action, Record) and action.event != "updated":
            say(f"~ {action.describe()}")
    waiting = [(e.id, e.waiting_reason) for e in p.state.entries if e.waiting_reason]
    for exp_id, why in waiting:
        say(f"  {exp_id}: waiting: {terminal_safe(why)}")
    if waiting:  # never "nothing to do" while experiments wait: they are listed with their reasons
        say(f"{len(waiting)} experiment(s) waiting" + (": nothing to launch now" if p.empty else ""))
    if p.empty:
        if not waiting:
            say("nothing to do")
        return EXIT_OK
    return EXIT_STALLED
