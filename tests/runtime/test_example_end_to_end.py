"""The example project reconciled for real on a local target, with the runtime in its jobs:
wandb offline run dirs in the run dirs, checkpoints on the (loopback) Hub and gone locally only
after, and the jobs' sidecar fields merged into ``dispatch/state.json``.

It needs the lead's wiring: the engine appends the runtime bundle to the shipped code and the
wrapper puts it on ``PYTHONPATH`` (the jobs run the system ``python3``, which has no reconciler).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from reconciler.engine import reconcile_once
from reconciler.model.status import StateFile
from tests.example.tools import copy_example
from tests.fakes.fakehub import FakeHub

pytest.importorskip("wandb")
pytestmark = pytest.mark.slow
HF_REPO = "me/example-artifacts"


def make_project(dest: Path) -> Path:
    """The example pilot with one seed per experiment (4 runs, two stages), committed."""
    project = copy_example(dest)
    dispatch = project / "dispatch" / "experiments.yaml"
    doc = yaml.safe_load(dispatch.read_text())
    for exp in doc["experiments"]:
        exp["seeds"] = [0]
    dispatch.write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost"}
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@localhost", PATH="/usr/bin:/bin")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "pilot, one seed"]):
        subprocess.run(["git", *args], cwd=project, env=env, check=True, capture_output=True)
    return project


def settle(project: Path, deadline: float = 120.0) -> StateFile:
    end = time.monotonic() + deadline
    while True:
        reconcile_once(project, log=lambda _m: None)
        state = StateFile.loads((project / "dispatch" / "state.json").read_text())
        if all(e.status.value not in ("pending", "queued", "running") for e in state.entries):
            return state
        assert time.monotonic() < end, [(e.id, e.status.value) for e in state.entries]
        time.sleep(0.3)


@pytest.fixture
def job_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_hub: FakeHub) -> FakeHub:
    """What the jobs inherit from this process (a local target passes its environment on)."""
    home = tmp_path / "home"
    # the commands say `python3`: this interpreter's, which has wandb and huggingface_hub
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("RECONCILER_HF_REPO", HF_REPO)
    monkeypatch.setenv("RECONCILER_HUB_ATTEMPTS", "2")
    monkeypatch.setenv("RECONCILER_HUB_BACKOFF", "0.01")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(home / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(home / "wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(home / "wandb-data"))
    monkeypatch.delenv("WANDB_DIR", raising=False)
    return fake_hub


def test_the_example_end_to_end_with_wandb_offline_and_the_hub(tmp_path: Path, job_env: FakeHub) -> None:
    project = make_project(tmp_path / "project")
    state = settle(project)
    assert {e.id: e.status.value for e in state.entries} == {
        "logreg_blobs_s0": "done",
        "logreg_moons_s0": "done",
        "mlp_blobs_s0": "done",
        "mlp_moons_s0": "done",
    }
    runs = project / ".reconciler" / "runs-local" / "runs"
    files = job_env.files(HF_REPO)
    for entry in state.entries:
        run_dir = runs / entry.id / "1"
        side = json.loads((run_dir / "status.json").read_text())
        # wandb: an offline run in the run dir, named in the sidecar and in the state
        offline = Path(side["wandb_run_id"])
        assert offline.parent == run_dir / "wandb" and list(offline.glob("run-*.wandb"))
        assert entry.wandb_run_id == side["wandb_run_id"]
        # the Hub: the checkpoint arrived, was confirmed, and only then left the target
        assert f"checkpoints/{entry.id}/{entry.id}.ckpt.json" in files
        assert entry.hf_artifact_url == side["hf_artifact_url"]
        assert side["checkpoint_deleted"] is True
        assert not (project / ".reconciler" / "runs-local" / "checkpoints" / entry.id).exists()
    assert len(job_env.commits(HF_REPO)) == 4  # one commit per checkpoint folder


def test_hub_down_keeps_every_checkpoint(tmp_path: Path, job_env: FakeHub) -> None:
    job_env.go_down("refused")
    project = make_project(tmp_path / "project")
    state = settle(project)
    assert all(e.status.value == "done" for e in state.entries)
    runs = project / ".reconciler" / "runs-local" / "runs"
    for entry in state.entries:
        side = json.loads((runs / entry.id / "1" / "status.json").read_text())
        assert side["hf_upload_error"] and side.get("hf_artifact_url") is None
        assert entry.hf_artifact_url is None
    kept = project / ".reconciler" / "runs-local" / "checkpoints"
    assert sorted(p.name for p in kept.iterdir()) == sorted(e.id for e in state.entries)
