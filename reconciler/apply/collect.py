"""Collect a run's result: copy it from the target into a private scratch dir, check it (the
canonical result CSV, ``results.check_result``) and only then write it into the project through the
confined atomic write. A missing, refused (symlink, device, over its cap) or invalid file is a
permanent verdict on the run, never a partial file in the project."""

from __future__ import annotations

import tempfile
from pathlib import Path

from reconciler.atomic import atomic_write_text
from reconciler.backends.base import Runner
from reconciler.confine import check_path
from reconciler.crashpoints import crash_point
from reconciler.errors import RefusedFile, RemoteFileMissing
from reconciler.model.actions import ActionResult, Collect, Collected
from reconciler.results import check_result


async def collect_result(runner: Runner, action: Collect, project_dir: Path) -> ActionResult:
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
    return ActionResult(action, True, verdict.message, outcome=Collected(verdict.rows, verdict.means))
