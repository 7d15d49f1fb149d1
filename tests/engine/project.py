"""A tiny real project for engine tests: a git repo with a config (one local target), a dispatch
file and a job script that writes the canonical result CSV and appends one line to a launch log
(outside the project) each time it really starts — so tests can count launches."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.model.status import StateFile
from reconciler.statestore import current_state
from tests.projectkit import commit_project, git

JOB = textwrap.dedent(
    """
    import argparse, os, socket, sys, time
    p = argparse.ArgumentParser()
    p.add_argument("--exp"); p.add_argument("--seed", type=int, default=0); p.add_argument("--out")
    p.add_argument("--sleep", type=float, default=0.0); p.add_argument("--fail", type=int, default=0)
    p.add_argument("--oom", action="store_true"); p.add_argument("--dry-run", action="store_true")
    p.add_argument("--value", type=float, default=0.9)
    a, _ = p.parse_known_args()
    if a.dry_run:
        sys.exit(0)
    with open(os.environ["LAUNCH_LOG"], "a") as f:
        f.write(a.exp + "\\n")
    deadline = time.monotonic() + a.sleep
    while time.monotonic() < deadline:
        time.sleep(0.05)
    if a.oom:
        print("torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", file=sys.stderr)
        sys.exit(1)
    if a.fail:
        print("Traceback (most recent call last):\\nRuntimeError: boom", file=sys.stderr)
        sys.exit(a.fail)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out + ".tmp", "w") as f:
        f.write("exp_id,method,dataset,group,metric,seed,value,host,gpu,finished_at\\n")
        f.write(f"{a.exp},m,d,main,accuracy,{a.seed},{a.value},{socket.gethostname()},,2026-11-26T00:00:00Z\\n")
    os.replace(a.out + ".tmp", a.out)
    """
)

CONFIG = textwrap.dedent(
    """\
    version: 1
    project: enginetest
    targets:
      local:
        kind: local
        root: .reconciler/runs-local
        max_runs: 8
    policies:
      poll_interval: 1
      backoff: {base_seconds: 0, factor: 1, max_seconds: 0}
    """
)


def dispatch(seeds: int = 3, sleep: float = 0.0, fail: int = 0, extra: str = "", flags: str = "") -> str:
    return (
        textwrap.dedent(
            f"""\
        version: 1
        defaults:
          phase: pilot
          expected_duration_hours: 0.01
          targets: [local]
          max_retries: 1
        experiments:
          - id: job
            command: >-
              python3 job.py --exp {{exp_id}} --seed {{seed}} --out {{result_file}}
              --sleep {sleep} --fail {fail}{flags}
            seeds: {list(range(seeds))}
            group: main
            method: m
            dataset: d
        """
        )
        + extra
    )


def make_project(root: Path, *, seeds: int = 3, sleep: float = 0.0, fail: int = 0, flags: str = "") -> Path:
    return commit_project(
        root / "project",
        {
            "config/reconciler.yaml": CONFIG,
            "dispatch/experiments.yaml": dispatch(seeds, sleep, fail, flags=flags),
            "job.py": JOB,
        },
    )


def reconcile(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "LAUNCH_LOG": str(project.parent / "launches.log"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args, "-C", str(project)] if args and args[0] == "--once"
        else [sys.executable, "-m", "reconciler", *args],
        cwd=project, env=full, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def launches(project: Path) -> list[str]:
    path = project.parent / "launches.log"
    return path.read_text().split() if path.exists() else []


def until(predicate: Callable[[], bool], deadline: float = 60.0, step: Callable[[], object] | None = None) -> None:
    """Call ``step`` (a pass) until ``predicate`` holds; fail after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("state not reached before the deadline")
        if step is not None:
            step()
        else:
            time.sleep(0.05)


def newest_entries(project: Path) -> dict[str, dict[str, Any]]:
    """The entries as ``reconcile status`` shows them: the committed ``dispatch/state.json`` with
    the newest uncommitted values (counters, progress, waiting reasons) of ``.reconciler/``."""
    path = project / "dispatch" / "state.json"
    if not path.exists():
        return {}
    state = current_state(project, StateFile.loads(path.read_text()))
    return {e.id: e.to_dict() for e in state.entries}


__all__ = ["CONFIG", "JOB", "dispatch", "git", "launches", "make_project", "newest_entries", "reconcile", "until"]
