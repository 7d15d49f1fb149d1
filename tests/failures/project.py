"""A real git project for the failure tests: the example's training scripts (plus ``shim.py``)
dispatched to the ``ssh`` target of ``tests.engine.test_ssh_target`` (the loopback sshd, user
``rctest``), one experiment with one seed, passes run in-process until it settles."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from reconciler.cli import main as cli_main
from tests.engine.test_ssh_target import config, run_pass
from tests.fixtures.sshd import SshdHost
from tests.projectkit import commit_project, git, recorded

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "examples" / "project" / "experiments" / "scripts"
SHIM = Path(__file__).with_name("shim.py")
EXP = "fx_s0"

TRAIN = (
    "python3 experiments/scripts/shim.py --method logreg --dataset blobs --seed {{seed}} --exp-id {{exp_id}}"
    " --checkpoint-dir {{checkpoint_dir}} --resume --result-file {{result_file}} --epochs 2 {flags}"
)


def dispatch(flags: str, max_retries: int) -> str:
    return textwrap.dedent(
        f"""\
        version: 1
        defaults:
          phase: pilot
          expected_duration_hours: 0.01
          gpus: 0
          targets: [gpu1]
          metrics: [accuracy, loss]
          max_retries: {max_retries}
        experiments:
          - id: fx
            command: >-
              {TRAIN.format(flags=flags)}
            seeds: [0]
            group: baseline
            method: logreg
            dataset: blobs
        """
    )


def make_project(
    tmp_path: Path,
    host: SshdHost,
    remote_dir: Path,
    flags: str,
    *,
    max_retries: int = 2,
    checkpoint_dir: Path | None = None,
) -> Path:
    text = config(host, f"{remote_dir.name}/runs")
    if checkpoint_dir is not None:
        text = text.replace("    max_runs: 8\n", f"    max_runs: 8\n    checkpoint_dir: {checkpoint_dir}\n")
    files = {"config/reconciler.yaml": text, "dispatch/experiments.yaml": dispatch(flags, max_retries)}
    copies = {f"experiments/scripts/{script.name}": script for script in (*SCRIPTS.glob("*.py"), SHIM)}
    return commit_project(tmp_path / "project", files, copies=copies)


def entry(project: Path) -> dict[str, Any]:
    """The experiment's record in ``dispatch/state.json`` (empty before the first pass)."""
    return recorded(project).get(EXP, {})


def attempts(project: Path) -> list[dict[str, Any]]:
    return list(entry(project).get("attempts") or [])


def drive(
    project: Path,
    until: Callable[[dict[str, Any]], bool],
    deadline: float = 30.0,
    after_pass: Callable[[dict[str, Any]], None] | None = None,
) -> list[str]:
    """Run passes until ``until(entry)`` holds. After every pass the state it wrote must be
    committed (a clean tree). Returns the statuses seen after each pass."""
    end = time.monotonic() + deadline
    seen: list[str] = []
    while not until(entry(project)):
        if time.monotonic() > end:
            raise AssertionError(f"not settled after {len(seen)} passes ({deadline} s): {seen} {entry(project)}")
        run_pass(project)
        assert git(project, "status", "--porcelain") == "", "a pass left uncommitted changes"
        now = entry(project)
        seen.append(now.get("status", "-"))
        if after_pass is not None:
            after_pass(now)
    return seen


def settled(e: dict[str, Any]) -> bool:
    return e.get("status") in ("done", "failed", "cancelled")


def state_history(project: Path) -> list[tuple[str, int, str | None]]:
    """(status, attempt, failure_class) of the experiment in each commit that touched the state,
    oldest first, consecutive repeats collapsed: the transitions as git recorded them."""
    shas = git(project, "log", "--reverse", "--format=%H", "--", "dispatch/state.json").split()
    out: list[tuple[str, int, str | None]] = []
    for sha in shas:
        doc = json.loads(git(project, "show", f"{sha}:dispatch/state.json"))
        e = next((x for x in doc["experiments"] if x["id"] == EXP), None)
        if e is None:
            continue
        item = (e["status"], int(e.get("attempt") or 0), e.get("failure_class"))
        if not out or out[-1] != item:
            out.append(item)
    return out


def reconcile_log(project: Path) -> str:
    result = CliRunner().invoke(cli_main, ["log", "-C", str(project), EXP])
    assert result.exit_code == 0, result.output
    return result.output
