"""GPU leases on the target (``model.leases``): the taker under the directory's lock, what the probe
reports, and a launch that binds its lease to its process and drops it when the run ends. Real
files, real processes, the real probe script; the GPUs are the fake ``nvidia-smi``."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.backends import probe as probe_mod
from reconciler.backends.local import LocalTransport
from reconciler.backends.shell import ShellRunner
from reconciler.errors import LeaseRefused
from reconciler.model.actions import Launch
from reconciler.model.config import GpuPolicy, Target, TargetKind
from reconciler.model.ids import launch_token
from reconciler.model.leases import LeaseRequest, lease_name
from tests.fixtures.fake_gpu import FakeGpu, FakeGpus
from tests.fixtures.sshd_procs import wait_for

GB = 1024.0
PROBE = Path(probe_mod.__file__).parent / "resources" / "probe.py"


def request(directory: Path, exp_id: str, gpus: tuple[int, ...] = (0,), gb: float = 36.0, **kw: object) -> LeaseRequest:
    fields: dict[str, object] = {
        "directory": str(directory),
        "name": lease_name(str(kw.pop("project", "p")), exp_id, 1),
        "project": "p",
        "exp_id": exp_id,
        "attempt": 1,
        "gpus": gpus,
        "reserved_mb": gb * GB,
        "capacity_mb": tuple((g, 80.0 * GB) for g in gpus),
        "max_runs": 4,
    }
    fields.update(kw)
    return LeaseRequest(**fields)  # type: ignore[arg-type]


def take(req: LeaseRequest, grace: float | None = None) -> subprocess.CompletedProcess[str]:
    doc = json.loads(req.document())
    if grace is not None:
        doc["grace"] = grace
    return subprocess.run(
        [sys.executable, "-S", str(PROBE), "--take-lease", json.dumps(doc)], capture_output=True, text=True, check=False
    )


def bind(req: LeaseRequest, pid: int) -> None:
    """What the run's wrapper writes once it runs: its pid and start time."""
    start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    Path(req.paths()[1]).write_text(f"{pid} {start}\n")


def test_a_gpu_never_holds_more_leased_memory_than_it_has(tmp_path: Path) -> None:
    leases = tmp_path / "leases"
    assert take(request(leases, "a")).returncode == 0
    assert stat.S_IMODE(leases.stat().st_mode) == 0o1777  # shared by the projects of several users
    assert take(request(leases, "b")).returncode == 0  # 72 of 80 GB
    refused = take(request(leases, "c"))
    assert refused.returncode == 96
    assert "GPU 0: 73728 MiB leased by 2 runs + 36864 MiB would exceed its 81920 MiB" in refused.stderr
    assert not Path(request(leases, "c").paths()[0]).exists()
    assert take(request(leases, "c", gpus=(1,))).returncode == 0  # another GPU has room
    assert take(request(leases, "a")).returncode == 0  # the same run again: its own lease is replaced


def test_max_runs_per_gpu_counts_every_projects_leases(tmp_path: Path) -> None:
    leases = tmp_path / "leases"
    assert take(request(leases, "a", gb=1, max_runs=1)).returncode == 0
    refused = take(request(leases, "b", gb=1, max_runs=1, project="q"))
    assert refused.returncode == 96 and "GPU 0 holds 1 leased runs (max_runs_per_gpu 1)" in refused.stderr


def test_dead_leases_are_reclaimed(tmp_path: Path) -> None:
    leases = tmp_path / "leases"
    gone = subprocess.Popen(["sleep", "0"])
    gone.wait()
    first = request(leases, "a", gb=60)
    assert take(first).returncode == 0
    Path(first.paths()[1]).write_text(f"{gone.pid} 1\n")  # its wrapper ended without cleaning up
    assert take(request(leases, "b", gb=60)).returncode == 0
    assert not Path(first.paths()[0]).exists()
    live = subprocess.Popen(["sleep", "30"])
    try:
        bind(request(leases, "b", gb=60), live.pid)
        assert take(request(leases, "c", gb=60)).returncode == 96  # b's process runs: it holds
    finally:
        live.kill()
        live.wait()
    assert take(request(leases, "c", gb=60)).returncode == 0


def test_a_lease_never_bound_to_a_process_expires(tmp_path: Path) -> None:
    leases = tmp_path / "leases"
    assert take(request(leases, "a", gb=60)).returncode == 0
    assert take(request(leases, "b", gb=60)).returncode == 96  # within its grace: the launch may go on
    time.sleep(1.1)
    assert take(request(leases, "b", gb=60), grace=1.0).returncode == 0  # the launch died before its start


@pytest.fixture
def gpu_target(tmp_path: Path, fake_gpus: FakeGpus) -> tuple[ShellRunner, Path]:
    host = fake_gpus.local("lab", [FakeGpu(0), FakeGpu(1)])
    leases = tmp_path / "leases"
    target = Target(
        "lab",
        TargetKind.LOCAL,
        str(tmp_path / "root"),
        gpus=GpuPolicy(blacklist_models=(), leases=str(leases), max_runs_per_gpu=4),
    )
    return ShellRunner(target, LocalTransport(env=host.env), tmp_path, "p"), leases


def launch(tmp_path: Path, exp_id: str, req: LeaseRequest, command: str) -> Launch:
    root = tmp_path / "root"
    return Launch(
        exp_id=exp_id,
        target="lab",
        attempt=1,
        command=command,
        run_dir=f"{root}/runs/{exp_id}/1",
        token=launch_token("p", exp_id, 1),
        code_dir=f"{root}/code/c0",
        commit="c0",
        result_file=f"experiments/results/{exp_id}.csv",
        checkpoint_dir=f"{root}/checkpoints/{exp_id}",
        gpus=req.gpus,
        vram_gb=30,
        lease=req,
    )


def test_a_launch_takes_its_lease_binds_it_and_drops_it_at_the_end(
    tmp_path: Path, gpu_target: tuple[ShellRunner, Path]
) -> None:
    runner, leases = gpu_target
    (tmp_path / "root" / "code" / "c0").mkdir(parents=True)
    go = tmp_path / "go"
    req = request(leases, "a")

    async def scenario() -> None:
        await runner.probe()  # installs the probe, which takes the leases
        started = await runner.launch(launch(tmp_path, "a", req, f"while [ ! -e {go} ]; do sleep 0.1; done"))
        pid_words = Path(req.paths()[1]).read_text().split()
        assert int(pid_words[0]) == started.pid and pid_words[1] == started.start_time
        seen = await runner.probe()
        assert [(x.exp_id, x.gpus, x.reserved_mb, x.pid) for x in seen.leases] == [("a", (0,), 36 * GB, started.pid)]
        with pytest.raises(LeaseRefused, match="GPU 0: 36864 MiB leased by 1 runs"):
            await runner.launch(launch(tmp_path, "b", request(leases, "b", gb=50), "true"))
        assert not (tmp_path / "root" / "runs" / "b").exists()  # refused before anything was made
        go.write_text("")
        wait_for(lambda: not Path(req.paths()[0]).exists(), "the lease to go with the run")
        assert not Path(req.paths()[1]).exists()
        assert (await runner.probe()).leases == ()

    asyncio.run(scenario())


def test_the_probe_ignores_malformed_and_linked_leases(tmp_path: Path, gpu_target: tuple[ShellRunner, Path]) -> None:
    runner, leases = gpu_target
    leases.mkdir()
    (leases / "junk.json").write_text("{not json")
    (leases / "wrong.json").write_text(json.dumps({"gpus": "all", "reserved_mb": 5, "attempt": 1}))
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"gpus": [0], "reserved_mb": 5, "attempt": 1, "project": "x", "exp_id": "y"}))
    os.symlink(secret, leases / "linked.json")
    assert asyncio.run(runner.probe()).leases == ()
