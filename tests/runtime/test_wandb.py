"""Real wandb, offline (no network, no account): the run's files on disk, the sidecar, resume,
the online-to-offline fallback, and syncing offline runs with ``wandb sync``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.tracking.wandb_sync import MARK, parse_sync_output, sync_command

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

pytest.importorskip("wandb")
REPO = Path(__file__).resolve().parents[2]

JOB = """
import json, sys
from reconciler import runtime
tracker = runtime.init_wandb({"method": "mlp", "dataset": "moons", "seed": 0, "phase": "pilot"}, ["round-1"],
                             project="demo", resume="--resume" in sys.argv)
for step in range(3):
    tracker.log({"loss": 1.0 / (step + 1)}, step=step)
    runtime.set_progress(step + 1, 3)
runtime.write_final({"accuracy": 0.9})
tracker.finish()
print(json.dumps({"mode": tracker.mode, "id": tracker.run_id, "url": tracker.url,
                  "wandb_loaded": "wandb" in sys.modules}))
"""


def job(run_dir: Path, env: dict[str, str], *args: str, attempt: int = 1) -> dict[str, Any]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "RECONCILER_"))}
    full.update(env, EXP_ID="exp1_s0", RECONCILER_RUN_DIR=str(run_dir), RECONCILER_ATTEMPT=str(attempt))
    full["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-c", JOB, *args], cwd=run_dir, env=full, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["stderr"] = proc.stderr
    return out


def attempt_dir(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "root" / "runs" / "exp1_s0" / str(n)
    path.mkdir(parents=True)
    return path


def sidecar(run_dir: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((run_dir / "status.json").read_text())
    return doc


def offline_runs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def test_an_offline_run_lands_in_the_run_dir_and_the_sidecar(tmp_path: Path, wandb_env: dict[str, str]) -> None:
    run_dir = attempt_dir(tmp_path, 1)
    out = job(run_dir, wandb_env)
    assert out["mode"] == "offline"
    [offline] = offline_runs(run_dir)
    assert offline.name.endswith(f"-{out['id']}")
    assert (offline / f"run-{out['id']}.wandb").stat().st_size > 0
    side = sidecar(run_dir)
    assert side["wandb_run_id"] == str(offline) == out["url"]
    assert (side["wandb_id"], side["wandb_mode"], side["wandb_project"]) == (out["id"], "offline", "demo")
    assert side["final"] == {"accuracy": 0.9} and side["progress"] == 1.0
    assert json.loads((run_dir / "final" / "metrics.json").read_text())["metrics"] == {"accuracy": 0.9}


def test_a_resumed_attempt_continues_the_same_wandb_run(tmp_path: Path, wandb_env: dict[str, str]) -> None:
    first = job(attempt_dir(tmp_path, 1), wandb_env)
    second_dir = attempt_dir(tmp_path, 2)
    second = job(second_dir, wandb_env, "--resume", attempt=2)
    assert second["id"] == first["id"]
    [offline] = offline_runs(second_dir)
    assert offline.name.endswith(f"-{first['id']}")
    fresh = job(attempt_dir(tmp_path, 3), wandb_env, attempt=3)
    assert fresh["id"] != first["id"]


def test_online_without_an_account_falls_back_to_offline(tmp_path: Path, wandb_env: dict[str, str]) -> None:
    run_dir = attempt_dir(tmp_path, 1)
    out = job(run_dir, {**wandb_env, "WANDB_MODE": "online", "WANDB_BASE_URL": "http://127.0.0.1:9"})
    assert out["mode"] == "offline"
    assert "falling back to offline" in str(out["stderr"])
    assert sidecar(run_dir)["wandb_mode"] == "offline"
    assert len(offline_runs(run_dir)) == 1


def test_disabled_never_imports_wandb(tmp_path: Path, wandb_env: dict[str, str]) -> None:
    run_dir = attempt_dir(tmp_path, 1)
    out = job(run_dir, {**wandb_env, "WANDB_MODE": "disabled"})
    assert (out["mode"], out["wandb_loaded"]) == ("disabled", False)
    side = sidecar(run_dir)
    assert side["wandb_mode"] == "disabled" and "wandb_run_id" not in side
    assert not (run_dir / "wandb").exists()


def run_sync(run_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    wandb = f"{sys.executable} -m wandb"
    full = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    full.update(env)
    full.pop("WANDB_MODE", None)
    return subprocess.run(
        ["sh", "-c", sync_command(str(run_dir), wandb=wandb)], env=full, capture_output=True, text=True, timeout=120
    )


def test_sync_without_an_account_leaves_the_run_pending(tmp_path: Path, wandb_env: dict[str, str]) -> None:
    run_dir = attempt_dir(tmp_path, 1)
    job(run_dir, wandb_env)
    [offline] = offline_runs(run_dir)
    proc = run_sync(run_dir, wandb_env)
    assert proc.returncode == 0, proc.stderr
    report = parse_sync_output(proc.stdout + proc.stderr)
    assert report.pending == (str(offline),) and report.synced == ()
    assert not report.ok
    assert report.tail  # wandb said why


def test_sync_skips_runs_wandb_marked_synced(tmp_path: Path, wandb_env: dict[str, str]) -> None:
    run_dir = attempt_dir(tmp_path, 1)
    out = job(run_dir, wandb_env)
    [offline] = offline_runs(run_dir)
    (offline / f"run-{out['id']}.wandb.synced").touch()
    proc = run_sync(run_dir, wandb_env)
    report = parse_sync_output(proc.stdout)
    assert report.synced == (str(offline),) and report.ok and report.exit_code is None
    assert report.tail == ()  # wandb was not started


def test_sync_with_no_offline_run(tmp_path: Path) -> None:
    proc = subprocess.run(["sh", "-c", sync_command(str(tmp_path), wandb="false")], capture_output=True, text=True)
    assert proc.stdout == f"{MARK} none\n"
    report = parse_sync_output(proc.stdout)
    assert report.nothing and report.ok


def test_parse_sync_output() -> None:
    text = "\n".join(
        [
            "Syncing 2 run(s):",
            "  wandb/offline-run-20261126_000000-abc",
            "Synced https://wandb.ai/me/demo/runs/abc",
            f"{MARK} synced /r/wandb/offline-run-20261126_000000-abc",
            "wandb: ERROR Not authenticated.",
            f"{MARK} pending 1 /r/wandb/offline-run 2/with space",
        ]
    )
    report = parse_sync_output(text)
    assert report.synced == ("/r/wandb/offline-run-20261126_000000-abc",)
    assert report.pending == ("/r/wandb/offline-run 2/with space",)
    assert report.urls == ("https://wandb.ai/me/demo/runs/abc",)
    assert report.exit_code == 1
    assert report.tail[-1] == "wandb: ERROR Not authenticated."


def test_sync_command_quotes_explicit_dirs() -> None:
    text = sync_command("/r", offline_dirs=["/r/wandb/it's here"])
    assert "set -- '/r/wandb/it'\"'\"'s here'" in text
