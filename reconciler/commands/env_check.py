"""``reconcile env-check [TARGET]``: check now that targets can run this project's committed code.

Outside the pass, on demand: under the project lock it loads the committed desired state, opens
the runners in one event loop, and for each selected target probes it (for the resolved root),
ships the code and runs ``Runner.env_check`` (one remote command: see
``reconciler.backends.envcheck``): the neutral checks, then the config's ``env_check.command``
if it names one. No experiment's command is run (``plan.envcheck``). Each verdict
goes to ``progress/env_<TARGET>.json`` and is committed. Exit 0 every checked target is ready,
1 one failed or could not be checked, 2 invalid input, 75 the lock is held.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from reconciler.backends.base import Runner
from reconciler.commands.common import EXIT_OK, EXIT_STALLED, exit_codes, json_option, project_option
from reconciler.commands.complete import target_names
from reconciler.commands.display import say
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.gitstore.repo import ProjectRepo
from reconciler.gitstore.writer import commit_status
from reconciler.liveline import busy
from reconciler.model.actions import CheckEnv
from reconciler.model.config import Target
from reconciler.model.desired import DesiredState
from reconciler.model.env import EnvVerdict
from reconciler.plan.envcheck import check_env_action
from reconciler.session import open_project
from reconciler.statestore import read_env_verdicts, write_env_verdict
from reconciler.targets import open_runners


@dataclass(frozen=True)
class Outcome:
    """One target's answer: a verdict, or why there is none (``skipped``: nothing to check)."""

    target: str
    verdict: EnvVerdict | None = None
    error: str | None = None
    skipped: str | None = None

    @property
    def line(self) -> str:
        if self.skipped:
            return f"{self.target}: skipped ({self.skipped})"
        if self.verdict is None:
            return f"{self.target}: not checked: {self.error}"
        v = self.verdict
        if v.ready:
            gpus = ", ".join(str(g) for g in v.available_gpus) or "none"
            return f"{self.target}: {v.status} (python {v.python or '?'}, gpus: {gpus})" + v.repair_summary()
        why = v.evidence[-1] if v.evidence else v.notes
        return f"{self.target}: {v.status}: {why}" + v.repair_summary()


def check_action(
    desired: DesiredState, target: Target, root: str, commit: str, previous: EnvVerdict | None = None
) -> CheckEnv:
    """The ``CheckEnv`` for ``target`` whose root resolved to ``root`` (the planner's)."""
    return check_env_action(target, desired.config.policies, root, commit, previous)


async def _one(
    desired: DesiredState, runner: Runner, target: Target, commit: str, archive: Path, previous: EnvVerdict | None
) -> Outcome:
    try:
        observed = await runner.probe()
        if not observed.reachable:
            return Outcome(target.name, error=observed.error or "unreachable")
        await runner.ship_code(commit, archive)
        action = check_action(desired, target, observed.root or target.root, commit, previous)
        verdict = await runner.env_check(action, desired.config.policies.env_check_timeout)
    except ReconcilerError as exc:
        return Outcome(target.name, error=str(exc))
    return Outcome(target.name, verdict=verdict)


async def check_targets(
    project_dir: Path, repo: ProjectRepo, desired: DesiredState, names: Sequence[str], scratch: Path
) -> list[Outcome]:
    """Check ``names`` concurrently (one runner each, one event loop)."""
    commit = desired.revision or repo.head_sha()
    archive = scratch / f"{commit}.tar"
    repo.archive(commit, archive)
    runners = open_runners(desired.config, project_dir)
    try:
        previous = read_env_verdicts(project_dir, names)
        jobs = [
            _one(desired, runners.by_name[n], desired.config.target(n), commit, archive, previous.get(n)) for n in names
        ]
        return list(await asyncio.gather(*jobs))
    finally:
        await runners.close()


def run_env_check(project_dir: Path, target: str | None = None) -> tuple[list[Outcome], str | None]:
    """Check, write and commit; returns the outcomes and the new commit (``None``: nothing new)."""
    with open_project(project_dir) as session:  # the tree is checked before any target is asked
        project_dir, repo = session.project_dir, session.repo
        tree, desired = session.desired()
        names = list(desired.config.target_names)
        if target is not None:
            if target not in names:
                raise ConfigError(f"no target {target!r} in config/reconciler.yaml (targets: {', '.join(names)})")
            names = [target]
        with tempfile.TemporaryDirectory(prefix="reconciler-env-") as scratch:
            outcomes = asyncio.run(check_targets(project_dir, repo, desired, names, Path(scratch)))
        verdicts = [o.verdict for o in outcomes if o.verdict is not None]
        paths = [write_env_verdict(project_dir, v) for v in verdicts]
        summary = ", ".join(f"{v.target} {'ready' if v.ready else 'failed'}" for v in verdicts)
        sha = commit_status(
            repo,
            paths,
            subject=f"reconcile: env check {summary}",
            body="\n".join(o.line for o in outcomes if o.verdict is not None),
            trailers={"Desired-State": desired.revision or tree.sha},
            settings=desired.config.git,
        )
    return outcomes, sha


@click.command("env-check")
@click.argument("target", required=False, shell_complete=target_names)
@project_option
@json_option
@exit_codes
def env_check(target: str | None, project_dir: Path, as_json: bool) -> int:
    """Check a target's environment (all targets without TARGET): code there, environment
    activates, Python runs, GPUs visible, and the config's env_check.command (if any) passes. Writes and commits
    progress/env_<TARGET>.json. Exit 0 all ready, 1 any failed, 2 invalid input."""
    with busy(f"checking the environment of {target or 'every target'} (code, env, Python, GPUs)"):
        outcomes, sha = run_env_check(project_dir, target)
    checked = [o for o in outcomes if not o.skipped]
    code = EXIT_OK if all(o.verdict is not None and o.verdict.ready for o in checked) else EXIT_STALLED
    if as_json:
        docs = [
            {
                "target": o.target,
                "ready": o.verdict.ready if o.verdict is not None else False,
                "verdict": o.verdict.to_dict() if o.verdict is not None else None,
                "error": o.error,
                "skipped": o.skipped,
                "line": o.line,
            }
            for o in outcomes
        ]
        click.echo(json.dumps({"targets": docs, "commit": sha}, indent=2, sort_keys=True))
        return code
    for outcome in outcomes:
        say(outcome.line)
    if sha:
        click.echo(f"committed {sha[:10]}")
    return code
