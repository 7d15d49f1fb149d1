"""A run dir that does not hold our token is never ours (issue 15, item 8).

The target's user makes ``<root>/runs/job_s0/1`` before our first launch, with an ``exit_code`` and
no token (or an empty or foreign one): the launch refuses to claim it, the entry waits with a reason
naming the run dir (it does not fail), nothing is started, and the dir is left as it was. A run dir
of ours whose token disappears is left alone too: no failure, no result taken from it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.engine.project import launches, make_project, reconcile

RUN_DIR = ".reconciler/runs-local/runs/job_s0/1"


def entry(project: Path) -> dict[str, Any]:
    state = json.loads((project / "dispatch" / "state.json").read_text())
    (only,) = state["experiments"]
    return dict(only)


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.mark.parametrize(
    "squat",
    [
        {"exit_code": b"1\n"},  # the input: an exit code and no token
        {"exit_code": b"1\n", "token": b""},  # an empty token
        {"exit_code": b"1\n", "token": b"\n"},
        {"exit_code": b"1\n", "pid": b"1\n", "token": b"0123456789abcdef0123\n"},  # another token
    ],
    ids=["no-token", "empty-token", "blank-token", "foreign-token"],
)
def test_a_squatted_run_dir_makes_the_launch_wait_not_fail(tmp_path: Path, squat: dict[str, bytes]) -> None:
    project = make_project(tmp_path, seeds=1)
    run_dir = project / RUN_DIR
    run_dir.mkdir(parents=True)
    for name, data in squat.items():
        (run_dir / name).write_bytes(data)
    before = files(run_dir)
    for _ in range(3):
        ran = reconcile(project, "--once")
        assert "Traceback" not in ran.stderr, ran.stderr
        assert ran.returncode in (0, 1), ran.stderr
        time.sleep(0.2)
    found = entry(project)
    assert found["status"] == "pending", found
    assert found["attempt"] == 0
    assert found["failure_class"] is None
    assert f"{RUN_DIR} on local is not ours" in (found["waiting_reason"] or ""), found
    assert launches(project) == []  # nothing started in it
    assert files(run_dir) == before  # not claimed, nothing written
    assert not (run_dir / "launch.lock").exists()
    assert not (project / "experiments" / "results" / "job_s0.csv").exists()


def test_a_run_dir_whose_token_vanished_gives_no_failure_and_no_result(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1, sleep=1.5)
    ran = reconcile(project, "--once")
    assert ran.returncode in (0, 1), ran.stderr
    assert entry(project)["status"] == "running"
    run_dir = project / RUN_DIR
    (run_dir / "token").unlink()
    deadline = time.monotonic() + 30
    while not (run_dir / "exit_code").exists():  # the job ends: exit code 0, a result file
        assert time.monotonic() < deadline
        time.sleep(0.1)
    for _ in range(2):
        ran = reconcile(project, "--once")
        assert "Traceback" not in ran.stderr, ran.stderr
    shown = reconcile(project, "status", "--json", "-C", str(project))
    (found,) = json.loads(shown.stdout)
    assert found["status"] == "running", found  # not failed, not done
    assert "holds no token, not ours" in (found["waiting_reason"] or ""), found
    assert not (project / "experiments" / "results" / "job_s0.csv").exists()  # nothing collected
    assert launches(project) == ["job_s0"]
