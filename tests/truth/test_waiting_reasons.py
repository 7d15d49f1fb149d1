"""Issue 14, item 11 (first half): a waiting reason is true. "no GPU with 36 GB free on local"
was said while the RTX A6000 there had 48 GB free and was blacklisted; the reason must name what
was excluded and why. A real pass on a local target with fake GPUs (``tests.fixtures.fake_gpu``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.engine.project import reconcile
from tests.fixtures.fake_gpu import FakeGpu
from tests.truth.gpu_invariant import kill_runs
from tests.truth.gpu_project import entries, gpu_project, root

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

GB = 1024
H100 = FakeGpu(0, "NVIDIA H100 80GB HBM3", 81559, 71319, 10240)  # 10 GB free
A6000 = FakeGpu(1, "NVIDIA RTX A6000", 49140, 0, 49140)  # 48 GB free, blacklisted by model (the default)
L40S = FakeGpu(2, "NVIDIA L40S", 46068, 0, 46068)  # 45 GB free


@pytest.fixture
def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    made: list[Path] = []

    def build(gpus: list[FakeGpu], experiments: int, blacklist: str = "") -> Path:
        project, _ = gpu_project(
            tmp_path,
            monkeypatch,
            gpus,
            experiments=experiments,
            vram_gb=30,
            max_runs_per_gpu=1,
            blacklist=blacklist,
        )
        made.append(project)
        return project

    yield build
    for project in made:
        kill_runs(root(project))


def _waiting(project: Path) -> dict[str, str | None]:
    return {e["id"]: e["waiting_reason"] for e in entries(project) if e["status"] == "pending"}


def test_a_blacklisted_gpu_with_the_memory_is_named_in_the_reason(make: Callable[..., Path]) -> None:
    project = make([H100, A6000], 1)
    out = reconcile(project, "--once")
    assert out.returncode == 0, out.stderr
    assert _waiting(project) == {"e00": "no GPU with 36.0 GB free on local (GPU 1 NVIDIA RTX A6000 blacklisted)"}


def test_gpus_blacklisted_by_index_or_full_of_our_runs_are_named(make: Callable[..., Path]) -> None:
    project = make([H100, A6000, L40S], 3, blacklist=", blacklist_models: [], blacklist: [1]")
    out = reconcile(project, "--once")
    assert out.returncode == 0, out.stderr
    running = [e for e in entries(project) if e["status"] == "running"]
    assert [(e["id"], e["gpu"]) for e in running] == [("e00", 2)]
    reason = (
        "no GPU with 36.0 GB free on local "
        "(GPU 1 NVIDIA RTX A6000 blacklisted; GPU 2 NVIDIA L40S at max_runs_per_gpu (1 of 1))"
    )
    assert _waiting(project) == {"e01": reason, "e02": reason}
