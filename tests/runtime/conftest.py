"""Fixtures of the runtime tests: the fake Hub, a reconciler-like run dir, and wandb kept offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes import fixtures

fake_hub = fixtures.fake_hub  # the fixture (until tests/conftest.py exposes it everywhere)


@pytest.fixture
def run_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The variables the launch wrapper exports, for attempt 1 of ``exp1_s0``; returns the run dir."""
    run_dir = tmp_path / "root" / "runs" / "exp1_s0" / "1"
    run_dir.mkdir(parents=True)
    monkeypatch.setenv("EXP_ID", "exp1_s0")
    monkeypatch.setenv("RECONCILER_RUN_DIR", str(run_dir))
    monkeypatch.setenv("RECONCILER_ATTEMPT", "1")
    monkeypatch.setenv("RECONCILER_PROJECT", "demo")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    return run_dir


@pytest.fixture
def wandb_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a subprocess that runs real wandb with no network and no account."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        "HOME": str(home),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DISABLE_GIT": "true",
        "WANDB_CONFIG_DIR": str(home / ".config" / "wandb"),
        "WANDB_CACHE_DIR": str(home / ".cache" / "wandb"),
        "WANDB_DATA_DIR": str(home / ".local" / "wandb"),
    }
