"""A real project on a local target with fake GPUs (``tests.fixtures.fake_gpu``) for the issue-14
placement tests: ``gpu_project`` builds it with ``tests.engine.project``'s job and its own config."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.engine.project import JOB, newest_entries
from tests.fixtures.fake_gpu import FakeApp, FakeGpu, FakeGpuHost, FakeGpus
from tests.projectkit import commit_project

ROOT = ".reconciler/runs-local"


def gpu_config(max_runs_per_gpu: int, vram_factor: float = 1.2, blacklist: str = "") -> str:
    return textwrap.dedent(
        f"""\
        version: 1
        project: enginetest
        targets:
          local:
            kind: local
            root: {ROOT}
            gpus: {{max_runs_per_gpu: {max_runs_per_gpu}, vram_factor: {vram_factor}{blacklist}}}
        policies:
          poll_interval: 1
          backoff: {{base_seconds: 0, factor: 1, max_seconds: 0}}
        """
    )


def gpu_dispatch(count: int, vram_gb: float, sleep: float = 120.0) -> str:
    lines = [
        "version: 1",
        "defaults:",
        "  phase: pilot",
        "  expected_duration_hours: 1",
        "  targets: [local]",
        "  max_retries: 0",
        "  group: main",
        "  method: m",
        "  dataset: d",
        "experiments:",
    ]
    for i in range(count):
        lines += [
            f"  - id: e{i:02d}",
            f"    vram_gb: {vram_gb}",
            f"    priority: {i + 1}",
            f"    command: python3 job.py --exp {{exp_id}} --out {{result_file}} --sleep {sleep}",
        ]
    return "\n".join(lines) + "\n"


def gpu_project(  # the project, and its fake GPUs (on this process's PATH: passes inherit it)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    gpus: list[FakeGpu],
    *,
    experiments: int,
    vram_gb: float,
    max_runs_per_gpu: int,
    vram_factor: float = 1.2,
    blacklist: str = "",
) -> tuple[Path, FakeGpuHost]:
    files = {
        "config/reconciler.yaml": gpu_config(max_runs_per_gpu, vram_factor, blacklist),
        "dispatch/experiments.yaml": gpu_dispatch(experiments, vram_gb),
        "job.py": JOB,
    }
    project = commit_project(tmp_path / "project", files, message="GPU experiments")
    host = FakeGpus(tmp_path / "fake-gpus").local("local", gpus)
    host.install(monkeypatch)
    return project, host


def root(project: Path) -> Path:
    return project / ROOT


def entries(project: Path) -> list[dict[str, Any]]:
    return list(newest_entries(project).values())


def current(entry: dict[str, Any]) -> dict[str, Any]:
    return next(a for a in entry["attempts"] if a["n"] == entry["attempt"])


__all__ = ["FakeApp", "FakeGpu", "current", "entries", "gpu_project", "root"]
