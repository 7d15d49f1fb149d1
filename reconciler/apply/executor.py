"""Run a plan's I/O actions: targets concurrently, each target's actions in plan order
(kills, code, launches, collects), one ``ActionResult`` per action.

Errors are classified where they surface: a ``TemporaryError`` (connection, timeout) is a
temporary failure the next pass retries; a ``PermanentError`` stalls that action. A launch on a
target whose code could not be shipped is skipped (its experiment stays pending).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from reconciler.atomic import atomic_write_text
from reconciler.backends.base import Runner
from reconciler.confine import check_path
from reconciler.crashpoints import crash_point
from reconciler.errors import (
    PermanentError,
    ReconcilerError,
    RefusedFile,
    RemoteFileMissing,
    SchedulerBusy,
    TemporaryError,
)
from reconciler.model.actions import (
    Action,
    ActionResult,
    CheckEnv,
    Collect,
    Collected,
    EnvChecked,
    Kill,
    Launch,
    NotTried,
    Record,
    Refused,
    ShipCode,
    Tidy,
    TidyReport,
)
from reconciler.results import check_result
from reconciler.tracking.hub import confirm_artifact
from reconciler.tracking.wandb_sync import parse_sync_output, sync_command

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
            return await _collect(runner, action, project_dir)
        if isinstance(action, Tidy):
            return await _tidy(runner, action)
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


async def _tidy(runner: Runner, action: Tidy) -> ActionResult:
    """Checkpoint: deleted on the target only after the Hub lists the uploaded files (the Hub is
    asked from here, with this machine's ``HF_ENDPOINT``/``HF_TOKEN``). Offline wandb runs: synced
    on the target. A Hub or target away raises ``TemporaryError``: tried again next pass."""
    report = TidyReport()
    notes = []
    if action.artifact is not None and action.checkpoint_dir:
        repo, repo_type, path, files = action.artifact
        confirmation = await asyncio.to_thread(
            confirm_artifact, repo, path, list(files) or None, os.environ.get("HF_ENDPOINT"), repo_type=repo_type
        )
        report = dataclasses.replace(report, confirmed=confirmation.confirmed, missing=tuple(confirmation.missing))
        if confirmation.confirmed:
            deleted = await runner.remove_tree(action.checkpoint_dir)
            report = dataclasses.replace(report, deleted=deleted)
            notes.append(f"checkpoint confirmed on the Hub, {action.checkpoint_dir} deleted")
        else:
            notes.append("checkpoint NOT listed on the Hub; kept")
    if action.wandb_dirs:
        done = await runner.run_in_code(action.code_dir, sync_command(action.run_dir, offline_dirs=action.wandb_dirs))
        sync = parse_sync_output(done.stdout)
        report = dataclasses.replace(report, synced=tuple(sync.synced), wandb_urls=tuple(sync.urls))
        notes.append("wandb synced" if sync.ok else f"wandb sync incomplete: {' '.join(sync.tail)[-200:]}")
    ok = report.confirmed is not False
    return ActionResult(action, ok, "; ".join(notes), temporary=False, outcome=report)


async def _collect(runner: Runner, action: Collect, project_dir: Path) -> ActionResult:
    dest = project_dir / action.local_path
    check_path(project_dir, action.local_path)  # a symlinked results dir: refused before the copy
    # The copy lands in a private scratch dir, never in the project: only the checked text is
    # written there, through the confined atomic write.
    with tempfile.TemporaryDirectory(prefix="reconciler-collect-") as scratch:
        staging = Path(scratch) / "incoming"
        try:
            await runner.collect(action, staging)
        except RemoteFileMissing:
            return ActionResult(action, False, f"result file missing: {action.remote_path}", temporary=False)
        except RefusedFile as exc:
            return ActionResult(action, False, f"{action.local_path}: {exc}", temporary=False)
        text = staging.read_text(encoding="utf-8", errors="replace")
    verdict = check_result(text, action.exp_id)
    if not verdict.ok:
        return ActionResult(action, False, f"{action.local_path}: {verdict.message}", temporary=False)
    atomic_write_text(dest, text)
    crash_point("after_collect")
    return ActionResult(action, True, verdict.message, outcome=Collected(verdict.rows))
