"""``reconcile plan [--json]``: what a pass would do now; changes nothing (no lock, no write, no commit)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from reconciler.commands.common import EXIT_OK, EXIT_STALLED, exit_codes, json_option, project_option
from reconciler.commands.display import say, terminal_safe
from reconciler.engine import PassResult, reconcile_once
from reconciler.model.actions import Action, Launch, Record


@click.command("plan")
@project_option
@json_option
@exit_codes
def plan(project_dir: Path, as_json: bool) -> int:
    """Print what a pass would do, and what waits and why. Exit 0: no action due (experiments may
    still wait: they are listed); 1: changes pending; 2: invalid input."""
    quiet = as_json  # the warnings are in the document
    result = reconcile_once(project_dir, dry_run=True, log=lambda m: None if quiet else say(m, err=True))
    p = result.plan
    if as_json:
        click.echo(json.dumps(plan_doc(result), indent=2, sort_keys=True))
        return EXIT_OK if p.empty else EXIT_STALLED
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


def plan_doc(result: PassResult) -> dict[str, Any]:
    """The plan as ``schemas/cli/plan.schema.json`` describes it."""
    p = result.plan
    return {
        "empty": p.empty,
        "actions": [_action(a) for a in p.io_actions],
        "changes": [
            {"exp_id": a.exp_id, "event": a.event, "describe": a.describe()}
            for a in p.actions
            if isinstance(a, Record) and a.event != "updated"
        ],
        "waiting": [{"exp_id": e.id, "reason": e.waiting_reason} for e in p.state.entries if e.waiting_reason],
        "unreachable": dict(result.unreachable),
        "warnings": list(result.warnings),
    }


def _action(a: Action) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": a.kind, "describe": a.describe(), "target": getattr(a, "target", None)}
    exp_id = getattr(a, "exp_id", "")
    doc["exp_id"] = exp_id or None
    if isinstance(a, Launch):
        doc.update(
            attempt=a.attempt,
            gpus=list(a.gpus),
            vram_gb=a.vram_gb,
            vram_source=a.vram_source,
            command=a.command,
            commit=a.commit,
        )
    return doc
