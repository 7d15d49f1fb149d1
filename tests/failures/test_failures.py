"""End to end: real training failures over the real SSH target, driven by passes until settled.

Each test is a real git project (``tests.failures.project``) whose one experiment runs the
example's ``train.py`` (through ``shim.py`` for the failure modes train.py lacks) on the
loopback sshd as ``rctest``. The backoff is zero, so a retry launches on the next pass.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine.test_ssh_target import killing_runs, run_pass
from tests.failures.project import (
    attempts,
    drive,
    entry,
    make_project,
    reconcile_log,
    settled,
    state_history,
)
from tests.fixtures.sshd import USER, SshdHost, process_alive
from tests.projectkit import IDENTITY, git

pytestmark = pytest.mark.ssh

OOM_LINE = "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"


def group_alive(pgid: int) -> bool:
    """Any live (non-zombie) process in process group ``pgid``."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] not in "ZX" and int(fields[2]) == pgid:
            return True
    return False


def run_dir(remote_dir: Path, n: int) -> Path:
    return remote_dir / "runs" / "runs" / "fx_s0" / str(n)


def test_cuda_oom_while_running_kills_the_group_and_retries_with_half_the_batch(
    sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path
) -> None:
    project = make_project(tmp_path, sshd_hosts[0], rctest_dir, "--batch-size 64 --oom-hang 32")
    killed: dict[str, Any] = {}

    def check_kill(e: dict[str, Any]) -> None:
        first = next((a for a in e.get("attempts", []) if a["n"] == 1), None)
        if killed or first is None or first.get("failure_class") is None:
            return
        # The pass that recorded the failure killed the process group: nothing of it lives on.
        shim_pid = int((run_dir(rctest_dir, 1) / "shim.pid").read_text())
        killed.update(pgid=first["pid"], shim=shim_pid, group=group_alive(first["pid"]), alive=process_alive(shim_pid))

    with killing_runs(rctest_dir):
        seen = drive(project, settled, after_pass=check_kill)
    e = entry(project)
    assert e["status"] == "done", (seen, e)
    assert killed and not killed["group"] and not killed["alive"], killed
    first, second = attempts(project)
    assert first["failure_class"] == "cuda_oom"
    assert "--batch-size 64" in first["command"] and "--accumulate-grad-batches" not in first["command"]
    # Killed by us (SIGTERM to the group: 143), not ended by itself (30 s of sleep, then exit 1).
    assert (run_dir(rctest_dir, 1) / "exit_code").read_text().strip() == "143"
    assert "--batch-size 32" in second["command"] and "--accumulate-grad-batches 2" in second["command"]
    assert second["exit_code"] == 0 and second["failure_class"] is None
    assert e["retry_count"] == 1 and "--batch-size 32" in e["command"]
    assert "shim: batch_size=32 accumulate=2" in (run_dir(rctest_dir, 2) / "stdout.log").read_text()
    assert (project / "experiments/results/fx_s0.csv").read_text().startswith("exp_id,method,dataset")
    assert state_history(project) == [
        ("running", 1, None),
        ("pending", 1, "cuda_oom"),
        ("running", 2, None),
        ("done", 2, None),
    ]
    log = reconcile_log(project)
    assert "cuda_oom" in log and "command changed" in log, log
    # The OOM line is the attempt's evidence (checked last: see the report on the fatal kill).
    assert any(OOM_LINE in line for line in first["evidence"]), first


def test_nan_loss_retries_with_grad_clip_and_without_fp16(
    sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path
) -> None:
    project = make_project(tmp_path, sshd_hosts[0], rctest_dir, "--batch-size 16 --fp16 --fail-nan")
    with killing_runs(rctest_dir):
        seen = drive(project, settled)
    e = entry(project)
    assert e["status"] == "done", (seen, e)
    first, second = attempts(project)
    assert first["failure_class"] == "nan_loss"
    assert any("loss=nan" in line for line in first["evidence"]), first
    assert "--fp16" in first["command"] and "--grad-clip" not in first["command"]
    assert "--grad-clip 1.0" in second["command"] and "--fp16" not in second["command"]
    assert second["exit_code"] == 0
    # The run had ended when the probe saw it: failed and relaunched in the same pass (commit).
    assert [(s, n) for s, n, _ in state_history(project) if s != "pending"] == [
        ("running", 1),
        ("running", 2),
        ("done", 2),
    ]
    assert "command changed" in reconcile_log(project)


def test_import_error_found_by_the_env_check_keeps_the_experiment_pending(
    sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path
) -> None:
    """The config's ``env_check.command`` (a dry run that imports the project; train.py's
    --fail-import fails before its --dry-run check) catches a missing package before the first
    launch: the target is ENV_FAILED, nothing is launched and the experiment waits (pending, with
    the reason) instead of burning an attempt."""
    project = make_project(tmp_path, sshd_hosts[0], rctest_dir, "--fail-import")
    config = project / "config" / "reconciler.yaml"
    check = "python3 experiments/scripts/shim.py --method logreg --dataset blobs --fail-import --dry-run"
    config.write_text(config.read_text() + f"  env_check: {{command: '{check}'}}\n")
    git(project, *IDENTITY, "commit", "-qam", "an env check that imports the project")
    with killing_runs(rctest_dir):
        drive(project, lambda e: bool(e.get("waiting_reason")))
        for _ in range(2):  # and so it stays, pass after pass (no re-check, no launch)
            run_pass(project)
    e = entry(project)
    assert e["status"] == "pending" and e.get("attempts", []) == [] and e["retry_count"] == 0, e
    assert "gpu1 env failed" in e["waiting_reason"] and "ModuleNotFoundError" in e["waiting_reason"], e
    verdict = json.loads((project / "progress" / "env_gpu1.json").read_text())
    assert verdict["status"] == "ENV_FAILED"
    assert any("ModuleNotFoundError: No module named 'missing_pkg'" in line for line in verdict["evidence"]), verdict
    assert not (rctest_dir / "runs" / "runs" / "fx_s0").exists()  # never launched
    assert git(project, "status", "--porcelain") == ""
    assert state_history(project) == [("pending", 0, None)]


def test_import_error_at_run_time_fails_without_retry(
    sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path
) -> None:
    project = make_project(tmp_path, sshd_hosts[0], rctest_dir, "--import-late")
    with killing_runs(rctest_dir):
        seen = drive(project, settled)
    e = entry(project)
    assert e["status"] == "failed" and e["retry_count"] == 0, (seen, e)
    (only,) = attempts(project)
    assert only["failure_class"] == "import_error" and only["exit_code"] == 1
    assert any("ModuleNotFoundError: No module named 'missing_pkg_for_failure_tests'" in x for x in only["evidence"])
    assert "--import-late" in only["command"]
    assert state_history(project) == [("running", 1, None), ("failed", 1, "import_error")]
    assert "no automatic retry" in e["notes"]


def test_exit_137_without_oom_evidence_is_killed_and_retries_as_it_was(
    sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path
) -> None:
    """Exit 137 with no OOM-killer evidence (no cgroup oom_kill, no kernel line naming the run)
    is ``killed``, not ``kernel_oom``: retried without halving the batch."""
    project = make_project(tmp_path, sshd_hosts[0], rctest_dir, "--batch-size 64 --fail-exit 137", max_retries=1)
    with killing_runs(rctest_dir):
        seen = drive(project, settled)
    e = entry(project)
    assert e["status"] == "failed", (seen, e)  # --fail-exit fails every attempt; one retry allowed
    first, second = attempts(project)
    assert (first["failure_class"], first["exit_code"]) == ("killed", 137)
    assert (second["failure_class"], second["exit_code"]) == ("killed", 137)
    assert "--batch-size 64" in first["command"] and "--batch-size 64" in second["command"]
    assert "--accumulate-grad-batches" not in second["command"]
    assert any("exiting with code 137" in line for line in first["evidence"]), first
    assert [(s, n) for s, n, _ in state_history(project) if s != "pending"] == [
        ("running", 1),
        ("running", 2),
        ("failed", 2),
    ]
    assert "1 of 1 automatic retries used" in e["notes"]


@pytest.fixture
def small_tmpfs(rctest_dir: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs owned by rctest, unmounted before ``rctest_dir`` is removed."""
    mount = rctest_dir / "ckpt"
    mount.mkdir()
    account = pwd.getpwnam(USER)
    opts = f"size=1m,mode=0755,uid={account.pw_uid},gid={account.pw_gid}"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_on_the_checkpoint_dir_fails_without_retry(
    sshd_hosts: list[SshdHost], rctest_dir: Path, small_tmpfs: Path, tmp_path: Path
) -> None:
    project = make_project(tmp_path, sshd_hosts[0], rctest_dir, "--fill-checkpoint-dir", checkpoint_dir=small_tmpfs)
    with killing_runs(rctest_dir):
        seen = drive(project, settled)
    e = entry(project)
    assert e["status"] == "failed" and e["retry_count"] == 0, (seen, e)
    (only,) = attempts(project)
    assert only["failure_class"] == "disk_full" and only["exit_code"] == 1
    assert any("No space left on device" in line for line in only["evidence"]), only
    assert os.statvfs(small_tmpfs).f_bavail > 0  # the filler was removed: the log got the traceback


def test_example_train_py_oom_retry_succeeds(sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path) -> None:
    project = make_project(tmp_path, sshd_hosts[0], rctest_dir, "--batch-size 64 --fail-oom 32")
    text = (project / "dispatch" / "experiments.yaml").read_text().replace("scripts/shim.py", "scripts/train.py")
    (project / "dispatch" / "experiments.yaml").write_text(text)
    git(project, *IDENTITY, "commit", "-qam", "run train.py itself")
    with killing_runs(rctest_dir):
        seen = drive(project, settled)
    first = attempts(project)[0]
    assert (first["failure_class"], first["exit_code"]) == ("cuda_oom", 1)
    assert entry(project)["status"] == "done", (seen, attempts(project)[-1])
