"""``reconcile logs EXP [--attempt N] [-n LINES] [-f] [--json]``: a run's output, read from its
target (local, SSH, or a batch cluster's shared filesystem through the login host) with one
command per read (``backends.logread``: never through a symlink), and with ``-f`` followed until
the run ends. Exit 0; 1 when there is nothing to show (the experiment has not run yet, its target
is not answering or its log was refused); 2 for an unknown experiment or attempt."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import click

from reconciler.backends.logread import MAX_CHUNK, LogChunk
from reconciler.commands.common import EXIT_OK, EXIT_STALLED, exit_codes, json_option, project_option
from reconciler.commands.complete import experiment_ids
from reconciler.commands.display import say, terminal_safe
from reconciler.commands.stateview import entry_of, read_state
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.gitstore.repo import ProjectRepo
from reconciler.gitstore.tree import GitTree
from reconciler.load import load_desired
from reconciler.model.config import Config
from reconciler.model.status import Attempt
from reconciler.targets import open_runners

FOLLOW_INTERVAL = 1.0
"""Seconds between two reads of a followed log."""


@click.command("logs")
@project_option
@click.argument("exp_id", shell_complete=experiment_ids)
@click.option("--attempt", type=click.IntRange(min=1), default=None, help="Which attempt (default: the newest).")
@click.option("-n", "--lines", type=click.IntRange(min=0), default=50, show_default=True, help="Lines from the end.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until the run ends.")
@json_option
@exit_codes
def logs(project_dir: Path, exp_id: str, attempt: int | None, lines: int, follow: bool, as_json: bool) -> int:
    """Print a run's output (its stdout.log on the target); -f follows a live run to its end."""
    configs: list[Config] = []

    def config(repo: ProjectRepo, tree: GitTree) -> None:
        configs.append(load_desired(tree).config)

    state = read_state(project_dir, also=config, archived=lambda live: live.get(exp_id) is None)
    entry = entry_of(state, exp_id)
    chosen = _attempt(entry.attempts, attempt, exp_id)
    if chosen is None:
        why = entry.waiting_reason or entry.status.value
        say(f"{exp_id}: no attempt has run yet ({why})", err=True)
        return EXIT_STALLED
    if chosen.target not in configs[0].target_names:
        raise ConfigError(f"{exp_id} attempt {chosen.n} ran on {chosen.target!r}, which the config no longer names")
    return asyncio.run(_show(project_dir, configs[0], exp_id, chosen, lines, follow, as_json))


def _attempt(attempts: tuple[Attempt, ...], n: int | None, exp_id: str) -> Attempt | None:
    if n is None:
        return max(attempts, key=lambda a: a.n) if attempts else None
    for a in attempts:
        if a.n == n:
            return a
    raise ConfigError(f"{exp_id} has no attempt {n} (attempts: {', '.join(str(a.n) for a in attempts) or 'none'})")


async def _show(
    project_dir: Path, config: Config, exp_id: str, attempt: Attempt, lines: int, follow: bool, as_json: bool
) -> int:
    runners = open_runners(config, project_dir, read_only=True)
    try:
        runner = runners.by_name[attempt.target]
        try:
            chunk = await runner.read_log(attempt.run_dir, -MAX_CHUNK)
        except ReconcilerError as exc:
            say(f"{exp_id}: {attempt.target} did not answer: {exc}", err=True)
            return EXIT_STALLED
        if chunk.refused:
            say(
                f"{exp_id}: {attempt.run_dir}/stdout.log is not a regular file of the target's user: not read", err=True
            )
            return EXIT_STALLED
        text = chunk.text
        if chunk.start > 0:  # cut mid-line: the first line is partial
            text = text.split("\n", 1)[1] if "\n" in text else ""
        shown = text.splitlines()[-lines:] if lines else []
        _emit(exp_id, attempt, shown, chunk, as_json)
        offset = chunk.end
        while follow and chunk.exit_code is None:
            time.sleep(FOLLOW_INTERVAL)
            try:
                chunk = await runner.read_log(attempt.run_dir, offset)
            except ReconcilerError as exc:
                say(f"{exp_id}: {attempt.target} did not answer ({exc}); trying again", err=True)
                continue
            if chunk.size < offset:  # truncated or replaced: start over
                chunk = await runner.read_log(attempt.run_dir, 0)
            new = chunk.text.splitlines() if chunk.text else []
            if new or chunk.exit_code is not None:
                _emit(exp_id, attempt, new, chunk, as_json)
            offset = chunk.end
            while chunk.end < chunk.size:  # more than one read's worth arrived
                chunk = await runner.read_log(attempt.run_dir, offset)
                _emit(exp_id, attempt, chunk.text.splitlines(), chunk, as_json)
                offset = chunk.end
        if chunk.exit_code is not None and not as_json:
            say(f"[{exp_id} attempt {attempt.n} exited {chunk.exit_code}]", err=True)
        return EXIT_OK
    finally:
        await runners.close()


def _emit(exp_id: str, attempt: Attempt, lines: list[str], chunk: LogChunk, as_json: bool) -> None:
    if as_json:
        doc = {
            "exp_id": exp_id,
            "attempt": attempt.n,
            "target": attempt.target,
            "run_dir": attempt.run_dir,
            "lines": lines,
            "exit_code": chunk.exit_code,
            "missing": chunk.missing,
        }
        click.echo(json.dumps(doc))
    elif lines:
        click.echo("\n".join(terminal_safe(line) for line in lines))
    sys.stdout.flush()
