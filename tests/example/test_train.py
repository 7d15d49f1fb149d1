"""The example training script by hand: resume, dry run, standard library only, and failures on demand."""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path

import pytest

from tests.example.tools import EXAMPLE, run

TRAIN = EXAMPLE / "experiments" / "scripts" / "train.py"


def train(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    """Run train.py in isolated mode (-I -S: no site-packages, so only the standard library is
    importable), writing no bytecode into the source tree (-B)."""
    flags = ["-B", "-I", "-S"]
    base = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "RECONCILER_RUN_DIR")}
    return run([sys.executable, *flags, str(TRAIN), *args], cwd=tmp_path, env={**base, **(env or {})})


def values(path: Path) -> dict[str, str]:
    with path.open(newline="") as f:
        return {row["metric"]: row["value"] for row in csv.DictReader(f)}


def test_runs_on_the_standard_library_alone(tmp_path: Path) -> None:
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
