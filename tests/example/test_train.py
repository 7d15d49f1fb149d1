"""The example training script by hand: resume, dry run, the standard library and the shipped
runtime only, failures on demand; and its use of the runtime (sidecar, wandb, Hub checkpoints)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.runtime import bundle
from tests.example.tools import EXAMPLE, run
from tests.fakes import fixtures
from tests.fakes.fakehub import FakeHub

fake_hub = fixtures.fake_hub  # the fixture (until tests/conftest.py exposes it everywhere)

TRAIN = EXAMPLE / "experiments" / "scripts" / "train.py"
_DROP = ("CUDA_VISIBLE_DEVICES", "EXP_ID", "EXP_GROUP", "PYTHONPATH")


def train(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, site: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run train.py as on a target: no site-packages (-S), so only the standard library and the
    runtime bundle the reconciler ships (on PYTHONPATH) are importable; no bytecode written (-B).
    ``site=True`` keeps site-packages (for wandb)."""
    rt = bundle.write_bundle(tmp_path.parent / f"{tmp_path.name}-runtime")
    flags = ["-B"] if site else ["-B", "-S"]
    base = {
        k: v for k, v in os.environ.items() if k not in _DROP and not k.startswith(("RECONCILER_", "WANDB_", "HF_"))
    }
    full = {**base, "PYTHONPATH": str(rt), **(env or {})}
    return run([sys.executable, *flags, str(TRAIN), *args], cwd=tmp_path, env=full)


def values(path: Path) -> dict[str, str]:
    with path.open(newline="") as f:
        return {row["metric"]: row["value"] for row in csv.DictReader(f)}


def test_runs_on_the_standard_library_and_the_runtime_alone(tmp_path: Path) -> None:
    proc = train(tmp_path, "--method", "mlp", "--dataset", "moons", "--seed", "1", "--result-file", "r.csv")
    assert proc.returncode == 0, proc.stderr
    assert set(values(tmp_path / "r.csv")) == {"accuracy", "loss"}


def test_resume_continues_from_the_checkpoint_and_matches_a_full_run(tmp_path: Path) -> None:
    common = ["--method", "mlp", "--dataset", "blobs", "--seed", "2"]
    full = train(tmp_path, *common, "--epochs", "8", "--result-file", "full.csv")
    assert full.returncode == 0, full.stderr
    first = train(tmp_path, *common, "--epochs", "3", "--checkpoint-dir", "ck", "--result-file", "part.csv")
    assert first.returncode == 0, first.stderr
    resumed = train(
        tmp_path, *common, "--epochs", "8", "--checkpoint-dir", "ck", "--resume", "--result-file", "resumed.csv"
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "after epoch 3" in resumed.stdout
    assert "epoch 3/8" not in resumed.stdout and "epoch 4/8" in resumed.stdout
    assert values(tmp_path / "resumed.csv") == values(tmp_path / "full.csv")


def test_dry_run_checks_and_writes_nothing(tmp_path: Path) -> None:
    start = time.monotonic()
    proc = train(tmp_path, "--method", "logreg", "--dataset", "moons", "--dry-run", "--checkpoint-dir", "ck")
    assert proc.returncode == 0, proc.stderr
    assert "dry run ok" in proc.stdout
    assert time.monotonic() - start < 5
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    assert train(tmp_path, "--method", "svm", "--dataset", "moons").returncode == 2
    assert train(tmp_path, "--method", "mlp", "--dataset", "moons", "--epochs", "0").returncode == 2


def test_exp_id_group_and_gpu_come_from_the_environment(tmp_path: Path) -> None:
    env = {"EXP_ID": "custom_s5", "EXP_GROUP": "ablation", "CUDA_VISIBLE_DEVICES": "1"}
    proc = train(tmp_path, "--method", "logreg", "--dataset", "blobs", "--seed", "5", "--epochs", "2", env=env)
    assert proc.returncode == 0, proc.stderr
    with (tmp_path / "experiments" / "results" / "custom_s5.csv").open(newline="") as f:
        row = next(csv.DictReader(f))
    assert (row["exp_id"], row["group"], row["gpu"], row["seed"]) == ("custom_s5", "ablation", "1", "5")


def test_fail_oom_prints_the_pytorch_error(tmp_path: Path) -> None:
    proc = train(tmp_path, "--method", "mlp", "--dataset", "moons", "--fail-oom", "--result-file", "r.csv")
    assert proc.returncode == 1
    assert (
        "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 23.69 GiB total capacity;"
        in proc.stderr
    )
    assert proc.stderr.startswith("Traceback (most recent call last):")
    assert not (tmp_path / "r.csv").exists()


def test_fail_oom_with_a_limit_passes_once_the_batch_is_halved(tmp_path: Path) -> None:
    args = ["--method", "logreg", "--dataset", "moons", "--fail-oom", "8", "--epochs", "2"]
    assert train(tmp_path, *args, "--batch-size", "16").returncode == 1
    assert train(tmp_path, *args, "--batch-size", "8").returncode == 0


def test_fail_nan_prints_nan_losses_unless_gradients_are_clipped(tmp_path: Path) -> None:
    proc = train(tmp_path, "--method", "mlp", "--dataset", "moons", "--fail-nan")
    assert proc.returncode == 1
    assert "loss=nan" in proc.stdout
    assert "loss is nan" in proc.stderr
    fixed = train(
        tmp_path, "--method", "mlp", "--dataset", "moons", "--fail-nan", "--grad-clip", "1.0", "--epochs", "2"
    )
    assert fixed.returncode == 0, fixed.stderr


@pytest.mark.parametrize("extra", [[], ["--dry-run"]])
def test_fail_import_raises_module_not_found(tmp_path: Path, extra: list[str]) -> None:
    proc = train(tmp_path, "--method", "mlp", "--dataset", "moons", "--fail-import", *extra)
    assert proc.returncode == 1
    assert "ModuleNotFoundError: No module named 'missing_pkg'" in proc.stderr


def test_fail_exit_uses_the_given_code(tmp_path: Path) -> None:
    proc = train(tmp_path, "--method", "mlp", "--dataset", "moons", "--fail-exit", "7", "--result-file", "r.csv")
    assert proc.returncode == 7
    assert not (tmp_path / "r.csv").exists()


def test_fail_times_fails_then_succeeds(tmp_path: Path) -> None:
    args = ["--method", "logreg", "--dataset", "blobs", "--fail-times", "2", "--checkpoint-dir", "ck", "--epochs", "2"]
    assert [train(tmp_path, *args).returncode for _ in range(3)] == [3, 3, 0]


def test_sleep_prints_progress_and_lasts(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    start = time.monotonic()
    proc = train(
        tmp_path,
        *("--method", "logreg", "--dataset", "blobs", "--sleep", "1.2", "--epochs", "1"),
        env={"RECONCILER_RUN_DIR": str(run_dir)},
    )
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - start >= 1.2
    assert "sleeping 0/1.2s" in proc.stdout and "sleeping 1/1.2s" in proc.stdout
    assert (run_dir / "status.json").exists()


def test_the_sidecar_tracks_progress_and_final_metrics(tmp_path: Path) -> None:
    run_dir = tmp_path.parent / f"{tmp_path.name}-run"
    run_dir.mkdir()
    env = {"RECONCILER_RUN_DIR": str(run_dir), "EXP_ID": "logreg_blobs_s0", "RECONCILER_ATTEMPT": "1"}
    proc = train(tmp_path, "--method", "logreg", "--dataset", "blobs", "--epochs", "3", env=env)
    assert proc.returncode == 0, proc.stderr
    side = json.loads((run_dir / "status.json").read_text())
    assert (side["exp_id"], side["step"], side["total"], side["progress"]) == ("logreg_blobs_s0", 3, 3, 1.0)
    assert side["wandb_mode"] == "disabled"
    assert set(side["final"]) == {"accuracy", "loss"}
    final = json.loads((run_dir / "final" / "metrics.json").read_text())
    assert final["metrics"] == side["final"]


def test_wandb_offline_when_the_environment_asks(tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    run_dir = tmp_path.parent / f"{tmp_path.name}-run"
    run_dir.mkdir()
    home = tmp_path.parent / f"{tmp_path.name}-home"
    env = {
        "RECONCILER_RUN_DIR": str(run_dir),
        "EXP_ID": "mlp_moons_s0",
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "HOME": str(home),
        "WANDB_CONFIG_DIR": str(home / "wandb-config"),
        "WANDB_CACHE_DIR": str(home / "wandb-cache"),
        "WANDB_DATA_DIR": str(home / "wandb-data"),
    }
    proc = train(tmp_path, "--method", "mlp", "--dataset", "moons", "--epochs", "2", env=env, site=True)
    assert proc.returncode == 0, proc.stderr
    side = json.loads((run_dir / "status.json").read_text())
    assert side["wandb_mode"] == "offline"
    offline = Path(side["wandb_run_id"])
    assert offline.parent == run_dir / "wandb" and offline.name.startswith("offline-run-")
    assert list(offline.glob("run-*.wandb"))


def hub_env(hub: FakeHub, run_dir: Path) -> dict[str, str]:
    return {
        "RECONCILER_RUN_DIR": str(run_dir),
        "EXP_ID": "logreg_moons_s1",
        "RECONCILER_HF_REPO": "me/example-artifacts",
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "RECONCILER_HUB_ATTEMPTS": "2",
        "RECONCILER_HUB_BACKOFF": "0.01",
    }


def test_the_checkpoint_goes_to_the_hub_and_then_away(tmp_path: Path, fake_hub: FakeHub) -> None:
    run_dir = tmp_path.parent / f"{tmp_path.name}-run"
    run_dir.mkdir()
    args = ["--method", "logreg", "--dataset", "moons", "--seed", "1", "--epochs", "2", "--checkpoint-dir", "ck"]
    proc = train(tmp_path, *args, env=hub_env(fake_hub, run_dir), site=True)
    assert proc.returncode == 0, proc.stderr
    files = fake_hub.files("me/example-artifacts")
    assert list(files) == ["checkpoints/logreg_moons_s1/logreg_moons_s1.ckpt.json"]
    assert json.loads(files["checkpoints/logreg_moons_s1/logreg_moons_s1.ckpt.json"])["epoch"] == 2
    assert not (tmp_path / "ck").exists()
    side = json.loads((run_dir / "status.json").read_text())
    assert side["hf_artifact_url"].endswith("/me/example-artifacts/tree/main/checkpoints/logreg_moons_s1")


def test_hub_down_keeps_the_checkpoint_and_the_run_succeeds(tmp_path: Path, fake_hub: FakeHub) -> None:
    run_dir = tmp_path.parent / f"{tmp_path.name}-run"
    run_dir.mkdir()
    fake_hub.go_down("refused")
    args = ["--method", "logreg", "--dataset", "moons", "--epochs", "2", "--checkpoint-dir", "ck"]
    proc = train(tmp_path, *args, env=hub_env(fake_hub, run_dir), site=True)
    assert proc.returncode == 0, proc.stderr
    assert "checkpoint kept in ck" in proc.stderr
    assert (tmp_path / "ck" / "logreg_moons_s1.ckpt.json").exists()
    side = json.loads((run_dir / "status.json").read_text())
    assert side.get("hf_artifact_url") is None and "create_repo" in side["hf_upload_error"]
