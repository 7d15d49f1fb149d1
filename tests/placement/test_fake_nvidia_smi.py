"""The fake ``nvidia-smi`` (``tests/fixtures/bin/nvidia-smi``) prints what the golden texts in
``tests/data/nvidia-smi/`` hold, refuses every other invocation, and the real probe (over the local
transport) turns its output into the GPUs of its state file."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.backends.gpus import APPS_QUERY, GPU_QUERY
from reconciler.backends.local import LocalTransport
from reconciler.backends.shell import ShellRunner
from reconciler.model.config import Target, TargetKind
from reconciler.model.observed import TargetObservation
from tests.fixtures.fake_gpu import FAKE_SMI, FakeApp, FakeGpu, FakeGpuHost, FakeGpus

DATA = Path(__file__).parent.parent / "data" / "nvidia-smi"
U0 = "GPU-4c5e2b1a-9d3f-6e8a-1b7c-2f4d6a8e0c13"
U1 = "GPU-7a1d3c9e-2b4f-8a6d-5c3e-9f1b7d2a4e86"
U2 = "GPU-b83e5f2d-6c1a-4d9b-8e7f-3a5c1d9b2f40"

GOLDEN_GPUS = (
    FakeGpu(0, "NVIDIA H100 80GB HBM3", 81559, 4, 81080, 0, uuid=U0),
    FakeGpu(1, "NVIDIA H100 80GB HBM3", 81559, 30977, 50107, 97, uuid=U1),
    FakeGpu(2, "NVIDIA RTX A6000", 49140, 1, 48663, 0, uuid=U2),
)
GOLDEN_APPS = (FakeApp(2291745, U1, 30968), FakeApp(4123, U1, 8192))


def smi(host: FakeGpuHost, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FAKE_SMI), *args], env={**os.environ, **host.env}, capture_output=True, text=True, check=False
    )


def test_the_fake_is_executable_and_answers_the_probe_queries_like_the_golden_texts(fake_gpus: FakeGpus) -> None:
    assert os.access(FAKE_SMI, os.X_OK)
    host = fake_gpus.local("t", GOLDEN_GPUS, GOLDEN_APPS)
    gpus = smi(host, *GPU_QUERY[1:])
    assert (gpus.returncode, gpus.stderr) == (0, "")
    assert gpus.stdout == (DATA / "gpus_nounits.txt").read_text()
    apps = smi(host, *APPS_QUERY[1:])
    assert (apps.returncode, apps.stdout) == (0, (DATA / "apps_nounits.txt").read_text())
    assert host.log_file is not None
    assert [json.loads(line) for line in host.log_file.read_text().splitlines()] == [
        list(GPU_QUERY[1:]),
        list(APPS_QUERY[1:]),
    ]


def test_placeholders_no_apps_and_no_driver(fake_gpus: FakeGpus) -> None:
    mig = FakeGpu(0, "NVIDIA A100-SXM4-80GB", 81920, 13, 81037, "[N/A]", uuid=U0)
    host = fake_gpus.local("t", [mig], [FakeApp(2291745, U0, "[N/A]")])
    assert smi(host, *GPU_QUERY[1:]).stdout == (DATA / "gpus_mig_na.txt").read_text()
    assert smi(host, *APPS_QUERY[1:]).stdout == (DATA / "apps_mig_na.txt").read_text()
    unsupported = "[Not Supported]"
    host.set([FakeGpu(0, "NVIDIA GeForce RTX 3090", 24576, unsupported, unsupported, unsupported, uuid=U0)])
    assert smi(host, *GPU_QUERY[1:]).stdout == (DATA / "gpus_not_supported.txt").read_text()
    empty = smi(host, *APPS_QUERY[1:])
    assert (empty.returncode, empty.stdout) == (0, (DATA / "apps_empty.txt").read_text())
    host.set(driver=False)
    for query in (GPU_QUERY, APPS_QUERY):
        failed = smi(host, *query[1:])
        assert (failed.returncode, failed.stdout) == (9, (DATA / "driver_failed.txt").read_text())


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-L"],
        ["--query-gpu=index,memory.total", "--format=csv,noheader,nounits"],
        [*GPU_QUERY[1:2], "--format=csv,noheader"],
        [*GPU_QUERY[1:], "-i", "0"],
    ],
)
def test_any_other_invocation_is_a_clear_error(fake_gpus: FakeGpus, args: list[str]) -> None:
    host = fake_gpus.local("t", GOLDEN_GPUS)
    done = smi(host, *args)
    assert done.returncode == 2 and done.stdout == ""
    assert "fake nvidia-smi: unsupported invocation" in done.stderr


def test_a_directory_state_is_chosen_by_the_ssh_server_address(tmp_path: Path) -> None:
    for name, count in (("127.0.0.2", 1), ("127.0.0.3", 2), ("local", 3)):
        gpus = [FakeGpu(i).to_dict() for i in range(count)]
        (tmp_path / f"{name}.json").write_text(json.dumps({"gpus": gpus}))

    def lines(connection: str | None) -> int:
        env = {k: v for k, v in os.environ.items() if k != "SSH_CONNECTION"}
        env["FAKE_NVIDIA_SMI_STATE"] = str(tmp_path)
        if connection is not None:
            env["SSH_CONNECTION"] = connection
        out = subprocess.run([str(FAKE_SMI), *GPU_QUERY[1:]], env=env, capture_output=True, text=True, check=True)
        return len(out.stdout.splitlines())

    assert lines("127.0.0.1 40000 127.0.0.2 22") == 1
    assert lines("127.0.0.1 40000 127.0.0.3 22") == 2
    assert lines(None) == 3


def probe(host: FakeGpuHost, root: Path) -> TargetObservation:
    runner = ShellRunner(Target(host.name, TargetKind.LOCAL, str(root)), host.transport(), None, "demo")
    return asyncio.run(runner.probe())


def test_the_real_probe_over_the_local_transport_sees_the_fake_gpus(fake_gpus: FakeGpus, tmp_path: Path) -> None:
    host = fake_gpus.local("gpubox", GOLDEN_GPUS, [FakeApp(4123, U1, 8192), FakeApp(77, "GPU-unknown", 100)])
    seen = probe(host, tmp_path / "root")
    assert seen.reachable and seen.gpus is not None
    assert [(g.index, g.uuid, g.name, g.memory_free_mb) for g in seen.gpus] == [
        (g.index, g.gpu_uuid, g.name, g.free_mb) for g in GOLDEN_GPUS
    ]
    assert [g.processes for g in seen.gpus] == [(), ((4123, 8192.0),), ()]
    host.set(GOLDEN_GPUS, driver=False)
    assert probe(host, tmp_path / "root").gpus is None  # a driver failure: no GPUs known, a CPU target
    assert host.log_file is not None and "--query-gpu" in host.log_file.read_text()


def test_without_the_fake_the_target_has_no_gpus(tmp_path: Path) -> None:
    path = "/usr/bin:/bin"
    if shutil.which("nvidia-smi", path=path):
        pytest.skip("a real nvidia-smi is installed here")
    transport = LocalTransport("cpu", env={"PATH": path})
    runner = ShellRunner(Target("cpu", TargetKind.LOCAL, str(tmp_path / "root")), transport, None, "demo")
    assert asyncio.run(runner.probe()).gpus is None
