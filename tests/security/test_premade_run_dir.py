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

from reconciler.model.actions import Collect, Kill
from reconciler.model.status import Status
from reconciler.plan import make_plan
from tests.engine.project import launches, make_project, reconcile
from tests.plan import builders

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

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


def _planned(token: str | None, *, status: str, run: dict[str, Any]) -> tuple[Any, list[Any]]:
    """The planner on one entry of attempt 1 whose run dir the probe reports with ``token``."""
    case: dict[str, Any] = {
        "config": {"project": "proj", "targets": [{"name": "local", "kind": "local", "root": "/r/local"}]},
        "experiments": [{"id": "a", "command": "python3 train.py --out {result_file}", "max_retries": 2}],
        "recorded": {
            "experiments": [
                {"id": "a", "status": status, "attempt": 1, "target": "local", "max_retries": 2,
                 "command": "python3 train.py --out {result_file}",
                 "attempts": [{"n": 1, "target": "local", "command": "x", "run_dir": "/r/local/runs/a/1",
                               "token": "t", "pid": 10, "start_time": "5"}]}
            ]
        },
        "observed": {"local": {"runs": [{"exp_id": "a", "attempt": 1, "token": token, "launched": True, **run}]}},
    }  # fmt: skip
    desired = builders.desired(case)
    plan = make_plan(desired, builders.recorded(case, "proj"), builders.observed(case, "proj"), builders.now(case))
    (entry,) = plan.state.entries
    return entry, list(plan.actions)


@pytest.mark.parametrize("token", [None, "", "someone-else"])
def test_the_planner_takes_nothing_from_a_run_dir_without_our_token(token: str | None) -> None:
    ended = {"pid": 10, "start_time": "5", "alive": False, "exit_code": 0}
    entry, actions = _planned(token, status="running", run=ended)
    assert entry.status is Status.RUNNING  # not done, not failed
    assert not [a for a in actions if isinstance(a, Collect)]
    assert "not ours: left alone" in (entry.waiting_reason or "")
    failed = {"pid": 10, "start_time": "5", "alive": False, "exit_code": 1}
    entry, _ = _planned(token, status="running", run=failed)
    assert entry.status is Status.RUNNING and entry.failure_class is None
    # a retry waiting on the leftover group of its last attempt: a group that is not ours is not killed
    leftover = {"pid": 10, "start_time": "5", "alive": False, "exit_code": 1, "group": (4242,)}
    entry, actions = _planned(token, status="pending", run=leftover)
    assert not [a for a in actions if isinstance(a, Kill)]


def test_the_planner_still_collects_and_stops_leftovers_of_its_own_run_dir() -> None:
    _, actions = _planned("t", status="running", run={"pid": 10, "start_time": "5", "alive": False, "exit_code": 0})
    assert [a for a in actions if isinstance(a, Collect)]
    leftover = {"pid": 10, "start_time": "5", "alive": False, "exit_code": 1, "group": (4242,)}
    _, actions = _planned("t", status="pending", run=leftover)
    assert [a for a in actions if isinstance(a, Kill)]
