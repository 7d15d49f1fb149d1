"""Issue 14, item 3: the memory of a young run is not forgotten after the pass that placed it.

A real project on a local target with one fake GPU (``max_runs_per_gpu: 3``, ``vram_factor: 1``)
and experiments of 30 GB. A young run has not allocated its memory yet, so ``nvidia-smi`` still
shows it as free: every later pass must hold ``max(estimate, attributed) - attributed`` for each
live run of ours, where ``attributed`` is what ``nvidia-smi`` lists for the processes of the run's
process group (the fake lists the live jobs' real pids), so memory is never counted twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.project import launches, reconcile, until
from tests.fixtures.fake_gpu import FakeApp, FakeGpu, FakeGpuHost
from tests.truth.gpu_invariant import job_pids, kill_runs
from tests.truth.gpu_project import current, entries, gpu_project, root

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

GB = 1024
TOTAL = 100 * GB


def _gpu(used_mb: float) -> FakeGpu:
    return FakeGpu(
        0, "NVIDIA H100 80GB HBM3", TOTAL, used_mb, TOTAL - used_mb, uuid="GPU-00000000-0000-4000-8000-00000000000a"
    )


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, FakeGpuHost]]:
    # 70 GB free: room for two runs of 30 GB, not three
    proj, host = gpu_project(
        tmp_path,
        monkeypatch,
        [_gpu(30 * GB)],
        experiments=4,
        vram_gb=30,
        max_runs_per_gpu=3,
        vram_factor=1.0,
    )
    try:
        yield proj, host
    finally:
        kill_runs(root(proj))


def _running(project: Path) -> list[dict[str, object]]:
    return [e for e in entries(project) if e["status"] == "running"]


def test_a_young_runs_memory_is_still_held_by_the_next_pass(world: tuple[Path, FakeGpuHost]) -> None:
    project, _ = world
    assert reconcile(project, "--once").returncode == 0
    assert len(_running(project)) == 2
    # The fake still shows 70 GB free: the two young runs have not allocated anything yet.
    second = reconcile(project, "--once")
    assert second.returncode == 0, second.stderr
    assert len(_running(project)) == 2, "the next pass placed a third 30 GB run into the young runs' memory"
    waiting = {e["id"]: e["waiting_reason"] for e in entries(project) if e["status"] == "pending"}
    assert waiting == {
        "e02": "no GPU with 30.0 GB free on local "
        "(GPU 0 NVIDIA H100 80GB HBM3 has 70.0 GB free, 60.0 GB of it held for runs of ours)",
        "e03": waiting["e02"],
    }
    until(lambda: len(launches(project)) == 2)
    assert sorted(launches(project)) == ["e00", "e01"]


def test_memory_nvidia_smi_attributes_to_a_run_is_not_counted_twice(world: tuple[Path, FakeGpuHost]) -> None:
    project, host = world
    assert reconcile(project, "--once").returncode == 0
    live = _running(project)
    assert len(live) == 2
    until(lambda: len(launches(project)) == 2)
    pids = job_pids(root(project))
    # Both runs now hold their full 30 GB (nvidia-smi lists each job's process with it) and the
    # other 30 GB in use were released: 40 GB free, room for one more run. Counting the runs'
    # estimates again on top of the free figure would leave none.
    apps = [FakeApp(max(pids[str(current(e)["run_dir"])]), _gpu(0).gpu_uuid, 30 * GB) for e in live]
    host.set([_gpu(60 * GB)], apps)
    third = reconcile(project, "--once")
    assert third.returncode == 0, third.stderr
    assert len(_running(project)) == 3, [e["waiting_reason"] for e in entries(project)]


def test_a_run_using_less_than_its_estimate_still_holds_the_rest(world: tuple[Path, FakeGpuHost]) -> None:
    project, host = world
    assert reconcile(project, "--once").returncode == 0
    live = _running(project)
    until(lambda: len(launches(project)) == 2)
    pids = job_pids(root(project))
    # Each run shows 10 GB so far (it will grow to its 30 GB estimate): 50 GB free by nvidia-smi,
    # 40 GB of it held for the two runs' growth, so a third 30 GB run does not fit.
    apps = [FakeApp(max(pids[str(current(e)["run_dir"])]), _gpu(0).gpu_uuid, 10 * GB) for e in live]
    host.set([_gpu(50 * GB)], apps)
    assert reconcile(project, "--once").returncode == 0
    assert len(_running(project)) == 2
    reason = next(e["waiting_reason"] for e in entries(project) if e["id"] == "e02")
    assert reason.endswith("has 50.0 GB free, 40.0 GB of it held for runs of ours)"), reason
