"""Run a plan's I/O actions: targets concurrently, each target's actions in plan order
(kills, code, launches, collects), one ``ActionResult`` per action.

Errors are classified where they surface: a ``TemporaryError`` (connection, timeout) is a
temporary failure the next pass retries; a ``PermanentError`` stalls that action. A launch on a
target whose code could not be shipped is skipped (its experiment stays pending).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from reconciler.apply.collect import collect_result
from reconciler.apply.tidy import tidy_run
from reconciler.backends.base import Runner
from reconciler.crashpoints import crash_point
from reconciler.errors import (
    PermanentError,
    ReconcilerError,
    SchedulerBusy,
    TemporaryError,
)
from reconciler.model.actions import (
    Action,
    ActionResult,
    CheckEnv,
    Collect,
    EnvChecked,
    Kill,
    Launch,
    NotTried,
    Record,
    Refused,
    ShipCode,
    Tidy,
)

ArchiveFor = Callable[[str], Path]
"""Returns a tar of the project's tree at a commit (made once per commit by the engine)."""


async def execute(
    actions: Sequence[Action],
    runners: Mapping[str, Runner],
    archive_for: ArchiveFor,
    project_dir: Path,
    env_timeout: float = 300.0,
) -> list[ActionResult]:
    by_target: dict[str, list[Action]] = {}
    for action in actions:
        if not isinstance(action, Record):
            by_target.setdefault(action.target, []).append(action)
    chunks = await asyncio.gather(
        *(_target(runners.get(t), acts, archive_for, project_dir, env_timeout) for t, acts in sorted(by_target.items()))
    )
    return [r for chunk in chunks for r in chunk]


async def _target(
    runner: Runner | None, actions: list[Action], archive_for: ArchiveFor, project_dir: Path, env_timeout: float
) -> list[ActionResult]:
    """Kills, code and the environment check first, in order; then the launches and collects of
    this target run side by side (at most ``PER_TARGET`` at once), each still one at a time per run."""
    if runner is None:
        return [ActionResult(a, ok=False, message="target not configured", temporary=False) for a in actions]
    results: list[ActionResult] = []
    blocked: str | None = None
    parallel: list[Action] = []
    for action in actions:
        if isinstance(action, Launch | Collect):
            parallel.append(action)
            continue
        if isinstance(action, CheckEnv) and blocked is not None:
            results.append(ActionResult(action, False, blocked, temporary=True))
            continue
        result = await _one(runner, action, archive_for, project_dir, env_timeout)
        if isinstance(action, ShipCode) and not result.ok:
            blocked = f"code {action.commit[:10]} not shipped: {result.message}"
        if isinstance(action, CheckEnv) and not result.ok:
            blocked = f"{action.target} env failed: {result.message}" if not result.temporary else result.message
        results.append(result)
    gate = asyncio.Semaphore(PER_TARGET)

    async def bounded(action: Action) -> ActionResult:
        if isinstance(action, Launch) and blocked is not None:
            return ActionResult(action, False, blocked, temporary=True, outcome=NotTried())
        async with gate:
            return await _one(runner, action, archive_for, project_dir, env_timeout)

    results.extend(await asyncio.gather(*(bounded(a) for a in parallel)))
    return results


PER_TARGET = 8
"""Launches and collects in flight on one target at a time (an SSH connection allows ~10 sessions)."""


async def _one(
    runner: Runner, action: Action, archive_for: ArchiveFor, project_dir: Path, env_timeout: float
) -> ActionResult:
    try:
        if isinstance(action, CheckEnv):
            verdict = await runner.env_check(action, env_timeout)
            why = verdict.evidence[-1] if verdict.evidence else verdict.notes
            return ActionResult(
                action, verdict.ready, verdict.status + (f": {why}" if why else ""), outcome=EnvChecked(verdict)
            )
        if isinstance(action, ShipCode):
            await runner.ship_code(action.commit, archive_for(action.commit))
            return ActionResult(action, True, "code present")
        if isinstance(action, Launch):
            started = await runner.launch(action)
            crash_point("after_launch")
            return ActionResult(action, True, "started", outcome=started)
        if isinstance(action, Collect):
            return await collect_result(runner, action, project_dir)
        if isinstance(action, Tidy):
            return await tidy_run(runner, action)
        if isinstance(action, Kill):
            gone = await runner.kill(action)
            crash_point("after_kill")
            return ActionResult(action, gone, "gone" if gone else "still running after the kill", temporary=not gone)
    except SchedulerBusy as exc:  # nothing was submitted: the launch waits, no retry is used
        return ActionResult(action, False, str(exc), temporary=True, outcome=NotTried())
    except TemporaryError as exc:
        return ActionResult(action, False, str(exc), temporary=True)
    except PermanentError as exc:
        return ActionResult(action, False, f"{exc.reason}: {exc}", temporary=False, outcome=Refused(exc.reason))
    except ReconcilerError as exc:
        return ActionResult(action, False, str(exc), temporary=True)
    return ActionResult(action, False, f"unknown action {action.kind}")
