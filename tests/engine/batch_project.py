"""The example project pointed at a batch target (PBS shim, real SLURM, a platform CLI), and
helpers to drive ``reconcile`` passes on it as a user would (``python -m reconciler``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.example.tools import copy_example, git_env
from tests.projectkit import commit_project, recorded


def batch_project(
    tmp: Path,
    target: dict[str, Any],
    env: dict[str, str],
    *,
    only: list[str] | None = None,
    extra_flags: dict[str, str] | None = None,
) -> tuple[Path, dict[str, str]]:
    """A git repo with the example project whose only target is ``hpc`` (``target``'s settings).

    ``only``: keep these experiments (base ids) of the dispatch file; ``extra_flags``: per base
    id, flags appended to its command (``--sleep 5``)."""
    project = copy_example(tmp / "project")
    full_env = {**git_env(tmp), **env}
    config_file = project / "config" / "reconciler.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["targets"] = {"hpc": target}
    config["policies"]["poll_interval"] = 1
    dispatch_file = project / "dispatch" / "experiments.yaml"
    dispatch = yaml.safe_load(dispatch_file.read_text())
    dispatch["defaults"]["targets"] = ["hpc"]
    if only is not None:
        dispatch["experiments"] = [e for e in dispatch["experiments"] if e["id"] in only]
        for table in (project / "experiments").glob("*.json"):  # they name the others
            table.unlink()
        for e in dispatch["experiments"]:
            e["stage"] = 1
    for e in dispatch["experiments"]:
        if extra_flags and e["id"] in extra_flags:
            e["command"] = f"{e['command']} {extra_flags[e['id']]}"
    files = {
        "config/reconciler.yaml": yaml.safe_dump(config, sort_keys=False),
        "dispatch/experiments.yaml": yaml.safe_dump(dispatch, sort_keys=False),
    }
    commit_project(project, files, message="Desired state: the example on a batch target")
    return project, full_env


def reconcile(project: Path, env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args, "-C", str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def state(project: Path) -> dict[str, dict[str, Any]]:
    return recorded(project)


def passes_until(
    project: Path,
    env: dict[str, str],
    done: Callable[[dict[str, dict[str, Any]]], bool],
    deadline: float = 150.0,
    pause: float = 0.5,
    extra_env: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run ``reconcile --once`` passes until ``done(state)`` holds; fail with the last output."""
    end = time.monotonic() + deadline
    last = ""
    while time.monotonic() < end:
        proc = reconcile(project, {**env, **(extra_env or {})}, "--once")
        last = proc.stdout + proc.stderr
        now = state(project)
        if now and done(now):
            return now
        time.sleep(pause)
    summary = {k: (v.get("status"), v.get("job_id"), v.get("failure_class")) for k, v in state(project).items()}
    raise AssertionError(f"not done after {deadline} s: {summary}\nlast pass:\n{last[-3000:]}")


def all_final(states: dict[str, dict[str, Any]]) -> bool:
    return all(e["status"] in ("done", "failed", "cancelled") for e in states.values())


def with_path(env: dict[str, str], *dirs: Path) -> dict[str, str]:
    return {**env, "PATH": os.pathsep.join([*(str(d) for d in dirs), env.get("PATH", "")])}
