"""``reconcile wait EXP... [--for done|settled] [--timeout S] [--interval S] [--drive] [--json]``:
block until experiments reach a state, for scripts and agents.

EXP are ids or globs (``'sweep_*'``) of recorded experiments or of experiments in the committed
spec that no pass recorded yet. ``--for done`` (default): every one is ``done`` (exit 0); one that
ends otherwise (``failed``, ``cancelled``) stops the wait at once (exit 1). ``--for settled``: every
one is final or waits for a person (``on_hold``) (exit 0 when all are done, else 1). Exit 124 when
``--timeout`` passes first, 2 when an EXP matches nothing.

It reads the status the passes write (a watcher, cron or the GitHub Action must run them); with
``--drive`` it runs a pass itself before each look (one ``reconcile --once``; skipped while another
``reconcile`` holds the lock). Each change of status is printed (``exp: running -> done``); with
``--json`` only the final document is printed (``schemas/cli/wait.schema.json``).
"""

from __future__ import annotations

import fnmatch
import json
import time
from pathlib import Path

import click

from reconciler.commands.common import EXIT_OK, EXIT_STALLED, EXIT_TIMEOUT, exit_codes, json_option, project_option
from reconciler.commands.complete import experiment_ids
from reconciler.commands.display import say
from reconciler.commands.stateview import read_state
from reconciler.errors import ConfigError, LockHeld
from reconciler.gitstore.repo import ProjectRepo
from reconciler.gitstore.tree import GitTree
from reconciler.model.status import StateFile, Status

_ENDED_BADLY = frozenset({Status.FAILED.value, Status.CANCELLED.value})
_SPEC_IDS: dict[str, list[str]] = {}
"""The committed spec's experiment ids by commit (the one HEAD was at on the last look)."""
_SETTLED = frozenset({Status.DONE.value, Status.FAILED.value, Status.CANCELLED.value, Status.ON_HOLD.value})


@click.command("wait")
@project_option
@click.argument("patterns", nargs=-1, required=True, metavar="EXP...", shell_complete=experiment_ids)
@click.option(
    "--for",
    "goal",
    type=click.Choice(["done", "settled"]),
    default="done",
    show_default=True,
    help="done: all done (any failure stops the wait); settled: all ended or waiting for a person.",
)
@click.option("--timeout", type=click.FloatRange(min=0), default=None, help="Give up after S seconds (exit 124).")
@click.option(
    "--interval", type=click.FloatRange(min=0.1), default=5.0, show_default=True, help="Seconds between looks."
)
@click.option("--drive", is_flag=True, help="Run a pass before each look (when nothing else runs them).")
@json_option
@exit_codes
def wait(
    project_dir: Path,
    patterns: tuple[str, ...],
    goal: str,
    timeout: float | None,
    interval: float,
    drive: bool,
    as_json: bool,
) -> int:
    """Wait until EXP... are done (or settled). Exit 0 reached, 1 one failed, 124 timed out."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen: dict[str, str] = {}
    while True:
        if drive:
            _pass(project_dir)
        statuses = _statuses(project_dir, patterns)
        for exp_id, value in sorted(statuses.items()):
            if seen.get(exp_id) != value and not as_json:
                say(f"{exp_id}: {seen[exp_id]} -> {value}" if exp_id in seen else f"{exp_id}: {value}")
        seen = statuses
        failed = sorted(e for e, v in statuses.items() if v in _ENDED_BADLY or (goal == "settled" and v == "on_hold"))
        if goal == "done" and failed:
            return _finish(statuses, goal, "failed", failed, as_json)
        settled = all(v in _SETTLED for v in statuses.values())
        if (goal == "done" and all(v == "done" for v in statuses.values())) or (goal == "settled" and settled):
            return _finish(statuses, goal, "failed" if failed else "reached", failed, as_json)
        if deadline is not None and time.monotonic() >= deadline:
            return _finish(statuses, goal, "timeout", failed, as_json)
        pause = interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic()))
        time.sleep(pause)


def _statuses(project_dir: Path, patterns: tuple[str, ...]) -> dict[str, str]:
    """Status by experiment for every id the patterns match (``pending`` for one in the committed
    spec that no pass recorded yet); an EXP that matches nothing is invalid input."""
    specs: list[str] = []

    def spec_ids(repo: ProjectRepo, tree: GitTree) -> None:
        if tree.sha not in _SPEC_IDS:  # the spec is read once per commit, not once per look
            from reconciler.load import load_desired

            _SPEC_IDS.clear()
            _SPEC_IDS[tree.sha] = [s.id for s in load_desired(tree).experiments]
        specs.extend(_SPEC_IDS[tree.sha])

    def archived(live: StateFile) -> bool:  # a matched spec id no live entry holds: in an archive?
        ids = {e.id for e in live.entries}
        return any(i not in ids and fnmatch.fnmatchcase(i, p) for p in patterns for i in specs)

    state = read_state(project_dir, also=spec_ids, archived=archived)
    recorded = {e.id: e.status.value for e in state.entries}
    known = {**dict.fromkeys(specs, Status.PENDING.value), **recorded}
    out: dict[str, str] = {}
    for pattern in patterns:
        matched = [i for i in known if fnmatch.fnmatchcase(i, pattern)]
        if not matched:
            raise ConfigError(f"no experiment matches {pattern!r}: `reconcile status` lists them")
        out.update((i, known[i]) for i in matched)
    return out


def _pass(project_dir: Path) -> None:
    from reconciler.engine import reconcile_once

    try:
        reconcile_once(project_dir, log=lambda m: None)
    except LockHeld:  # a watcher or cron pass is running: its result is read next
        return


def _finish(statuses: dict[str, str], goal: str, outcome: str, failed: list[str], as_json: bool) -> int:
    code = {"reached": EXIT_OK, "failed": EXIT_STALLED, "timeout": EXIT_TIMEOUT}[outcome]
    if as_json:
        doc = {"for": goal, "outcome": outcome, "exit": code, "experiments": statuses, "failed": failed}
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
        return code
    counts: dict[str, int] = {}
    for value in statuses.values():
        counts[value] = counts.get(value, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    words = {"reached": f"{goal}", "failed": "stopped: " + ", ".join(failed[:10]), "timeout": "timed out"}
    say(f"wait {words[outcome]} ({summary})")
    return code
