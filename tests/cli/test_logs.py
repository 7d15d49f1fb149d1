"""``reconcile logs`` end to end on a local target: the tail of a finished run, a live run followed
with ``-f`` to its end (every line, then the exit code), and the refusals (unknown experiment or
attempt: exit 2; a run not started yet: exit 1)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.example.tools import git_env, tool
from tests.projectkit import commit_project, recorded

JOB = """\
import sys, time
for i in range(8):
    print("step %d" % i, flush=True)
    time.sleep(0.3)
open(sys.argv[1], "w").write(
    "exp_id,method,dataset,group,metric,seed,value,host,gpu,finished_at\\n"
    "slow,m,d,main,acc,0,1.0,h,,2026-12-06T00:00:00+00:00\\n"
)
"""


def _project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    config = {
        "version": 1,
        "project": "logs",
        "targets": {"local": {"kind": "local", "root": ".reconciler/runs", "python": sys.executable, "max_runs": 1}},
    }
    dispatch = {
        "version": 1,
        "experiments": [
            {"id": "slow", "command": "python3 job.py {result_file}"},
            {"id": "later", "command": "python3 job.py {result_file}", "stage": 2},
        ],
    }
    files = {
        "config/reconciler.yaml": yaml.safe_dump(config),
        "dispatch/jobs.yaml": yaml.safe_dump(dispatch),
        "job.py": JOB,
    }
    return commit_project(tmp_path / "project", files), git_env(tmp_path)


def cli(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("reconcile"), *args], cwd=project, env=env, capture_output=True, text=True, timeout=120)


def test_follow_a_live_run_to_its_end_then_read_its_tail(tmp_path: Path) -> None:
    project, env = _project(tmp_path)
    assert cli(project, env, "--once").returncode in (0, 1)
    end = time.monotonic() + 30
    while recorded(project).get("slow", {}).get("status") != "running" and time.monotonic() < end:
        cli(project, env, "--once")
    followed = cli(project, env, "logs", "slow", "-f")
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.splitlines() == [f"step {i}" for i in range(8)]
    assert "[slow attempt 1 exited 0]" in followed.stderr

    tail = cli(project, env, "logs", "slow", "-n", "2")
    assert tail.returncode == 0 and tail.stdout.splitlines() == ["step 6", "step 7"]

    waiting = cli(project, env, "logs", "later")  # stage 2: not started while stage 1 runs
    assert waiting.returncode == 1 and "no attempt has run yet" in waiting.stderr
    assert cli(project, env, "logs", "slow", "--attempt", "9").returncode == 2
    unknown = cli(project, env, "logs", "nosuch")
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: no experiment 'nosuch'")
