"""Tidy a finished run on its target: delete its checkpoint once the Hugging Face Hub lists the
uploaded files, and sync its offline wandb runs."""

from __future__ import annotations

import asyncio
import dataclasses
import os

from reconciler.backends.base import Runner
from reconciler.model.actions import ActionResult, Tidy, TidyReport
from reconciler.tracking.hub import confirm_artifact
from reconciler.tracking.wandb_sync import parse_sync_output, sync_command


async def tidy_run(runner: Runner, action: Tidy) -> ActionResult:
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
