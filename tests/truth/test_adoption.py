"""Issue 14, item 1: a pass that dies after starting runs must not double-book their GPUs.

A real project on a local target with three fake GPUs (``max_runs_per_gpu: 1``) and six
experiments of 30 GB: a pass killed after its launches (``RECONCILER_CRASH_AT=after_apply``, or a
plain SIGKILL once the first job runs) leaves live jobs that no status records. The next normal
pass adopts them with the GPUs, start time and command their run dir recorded, counts them
against placement, and says "adopted" (not "launched") in its commit. What the jobs really got is
read from ``/proc/<pid>/environ``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.crashpoints import CRASH_EXIT_CODE
from tests.engine.project import git, launches, reconcile, until
from tests.fixtures.fake_gpu import FakeGpu
from tests.truth.gpu_invariant import gpu_violations, kill_runs, live_gpu_jobs, over_booked
from tests.truth.gpu_project import current, entries, gpu_project, root

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

GPUS = [FakeGpu(i, "NVIDIA H100 80GB HBM3", 81559, 4, 81555) for i in range(3)]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    proj, _ = gpu_project(tmp_path, monkeypatch, GPUS, experiments=6, vram_gb=30, max_runs_per_gpu=1)
    try:
        yield proj
    finally:
        kill_runs(root(proj))


def _wait_for_jobs(project: Path, count: int, deadline: float = 30.0) -> dict[str, tuple[int, ...]]:
    end = time.monotonic() + deadline
    while True:
        jobs = live_gpu_jobs(root(project))
        if len(jobs) >= count or time.monotonic() > end:
            return jobs
        time.sleep(0.05)


def _check_adopted(project: Path, adopted: set[str], commit: str) -> None:
    """Every adopted entry carries what its run dir recorded; no GPU holds two live runs."""
    state = {e["id"]: e for e in entries(project)}
    jobs = _wait_for_jobs(project, len([e for e in state.values() if e["status"] == "running"]))
    for exp_id in sorted(adopted):
        entry = state[exp_id]
        attempt = current(entry)
        assert entry["status"] == "running", entry
        assert attempt["gpus"], f"{exp_id} adopted without its GPUs: {attempt}"
        assert attempt["started"] and entry["started"], attempt
        assert attempt["command"].startswith(f"python3 job.py --exp {exp_id} --out {attempt['run_dir']}/")
        assert attempt["git_commit"] == entry["git_commit"] == commit
        assert entry["gpu"] == attempt["gpus"][0]
        # what the job really got is what the state says
        assert jobs[attempt["run_dir"]] == tuple(attempt["gpus"]), (exp_id, jobs)
    assert over_booked(jobs, 1) == {}, f"GPUs with two live jobs: {over_booked(jobs, 1)}; jobs {jobs}"
    assert gpu_violations(entries(project), 1) == []
    assert len(jobs) == 3  # every GPU busy, none twice


@pytest.mark.parametrize("older_run_dirs", [False, True], ids=["launch.json", "wrapper-only"])
def test_runs_of_a_pass_that_crashed_after_apply_are_adopted_with_their_gpus(
    project: Path, older_run_dirs: bool
) -> None:
    desired = git(project, "rev-parse", "HEAD")
    crashed = reconcile(project, "--once", env={"RECONCILER_CRASH_AT": "after_apply"})
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    started = _wait_for_jobs(project, 3)
    assert sorted(started.values()) == [(0,), (1,), (2,)]
    until(lambda: len(launches(project)) == 3)
    first = set(launches(project))
    if older_run_dirs:  # run dirs of a version without launch.json: the wrapper's export tells the GPUs
        for record in root(project).glob("runs/*/*/launch.json"):
            record.unlink()

    normal = reconcile(project, "--once")
    assert normal.returncode == 0, normal.stderr
    _check_adopted(project, first, desired)
    assert Counter(launches(project)) == Counter(first)  # nothing launched again, nothing new
    subject = git(project, "log", "-1", "--format=%s")
    assert "3 adopted" in subject and "launched" not in subject, subject
    waiting = {e["id"]: e["waiting_reason"] for e in entries(project) if e["status"] == "pending"}
    assert len(waiting) == 3
    assert all("at max_runs_per_gpu (1 of 1)" in (w or "") for w in waiting.values()), waiting


def test_runs_of_a_pass_killed_after_its_first_launch_are_adopted_with_their_gpus(project: Path) -> None:
    desired = git(project, "rev-parse", "HEAD")
    env = {**os.environ, "LAUNCH_LOG": str(project.parent / "launches.log")}
    runs = root(project) / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "--once", "-C", str(project)],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        end = time.monotonic() + 60
        while not any(runs.glob("*/*/pid")) and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the pass ended before its first launch was seen"
    assert not (project / "dispatch" / "state.json").exists() or all(e["status"] == "pending" for e in entries(project))
    prepared = {p.parent.parent.name for p in runs.glob("*/1/token")}
    assert prepared, "no run dir was made before the kill"

    normal = reconcile(project, "--once")
    assert normal.returncode == 0, normal.stderr
    _check_adopted(project, prepared, desired)
    state = {e["id"]: e for e in entries(project)}
    assert all(state[exp_id]["attempt"] == 1 for exp_id in prepared)
    assert all(n == 1 for n in Counter(launches(project)).values())


def test_the_invariant_helper_reports_a_gpu_with_more_live_runs_than_allowed() -> None:
    def entry(exp_id: str, status: str, gpus: list[int], target: str = "lab1") -> dict[str, object]:
        attempt = {"n": 1, "target": target, "gpus": gpus, "finished": None}
        return {"id": exp_id, "status": status, "attempt": 1, "attempts": [attempt]}

    state = [
        entry("a", "running", [0]),
        entry("b", "unreachable", [0, 1]),
        entry("c", "done", [1]),  # not live
        entry("d", "on_hold", [1]),  # held, its process may live
        entry("e", "running", [0], target="lab2"),
    ]
    assert gpu_violations(state, 1) == [
        "lab1 GPU 0: 2 live runs > max_runs_per_gpu 1 (a, b)",
        "lab1 GPU 1: 2 live runs > max_runs_per_gpu 1 (b, d)",
    ]
    assert gpu_violations(state, {"lab1": 2}) == []


def test_an_adopted_attempt_records_what_ran_not_what_the_spec_says_now(project: Path) -> None:
    """The spec changes between the crash and the next pass: the adopted attempts record the
    command and commit they were started with (``launch.json``), not the new ones."""
    desired = git(project, "rev-parse", "HEAD")
    crashed = reconcile(project, "--once", env={"RECONCILER_CRASH_AT": "after_apply"})
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    until(lambda: len(launches(project)) == 3)
    spec = project / "dispatch" / "experiments.yaml"
    spec.write_text(spec.read_text().replace("--sleep 120.0", "--sleep 121.0"))
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "longer sleep")

    assert reconcile(project, "--once").returncode == 0
    for exp_id in sorted(set(launches(project))):
        entry = next(e for e in entries(project) if e["id"] == exp_id)
        attempt = current(entry)
        assert attempt["command"].endswith("--sleep 120.0"), attempt["command"]
        assert attempt["git_commit"] == desired != git(project, "rev-parse", "HEAD~1")
