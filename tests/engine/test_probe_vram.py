"""``reconcile probe-vram`` end to end (issue 18): on a CPU project it says there is no GPU and
records nothing; on a target with (fake) GPUs it runs the experiment for a few steps, samples what
``nvidia-smi`` lists for the run's process group (the job "allocates" by registering its pid and
memory in the fake's table), records the peak in ``experiments/vram.json``, commits it, and the
next plan and ``status`` place with the measurement and say so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.engine.batch_project import reconcile
from tests.example.tools import copy_example, git_env
from tests.fixtures.fake_gpu import FakeGpu, FakeGpus
from tests.projectkit import commit_project, git

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

JOB = """\
import json, os, sys, time

from reconciler import runtime

out = sys.argv[1]
steps = int(os.environ.get("RECONCILER_MAX_STEPS") or 100)
gpu = int(os.environ["CUDA_VISIBLE_DEVICES"].split(",")[0])
apps = os.environ["VRAM_TEST_APPS"]
with open(os.path.join(apps, "%d.json" % os.getpid()), "w") as f:
    json.dump({"gpu": gpu, "used_memory": 12 * 1024}, f)
for step in range(1, steps + 1):
    time.sleep(0.4)
    runtime.set_progress(step, steps)
print("trained %d steps" % steps)
"""


def cli(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return reconcile(project, env, *args, timeout=300)


def test_on_a_cpu_project_it_says_there_is_no_gpu_and_records_nothing(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "project")
    commit_project(project, {}, message="the example")
    head = git(project, "rev-parse", "HEAD")
    done = cli(project, {**os.environ, **git_env(tmp_path)}, "probe-vram", "logreg_blobs")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "probe-vram logreg_blobs_s0 on local: nothing measured: local has no GPU" in done.stdout
    assert not (project / "experiments" / "vram.json").exists()
    assert git(project, "rev-parse", "HEAD") == head


def test_a_measurement_is_recorded_committed_and_placed_with(tmp_path: Path, fake_gpus: FakeGpus) -> None:
    apps = tmp_path / "apps"
    apps.mkdir()
    fake = fake_gpus.local("lab", [FakeGpu(0, memory_used=0), FakeGpu(1, memory_used=0)])
    fake.set(fake.gpus, apps_dir=apps)
    config = {
        "version": 1,
        "project": "vram",
        "targets": {
            "lab": {
                "kind": "local",
                "root": ".reconciler/runs-lab",
                "python": sys.executable,
                "gpus": {"blacklist_models": []},
                "env": {"variables": {"VRAM_TEST_APPS": str(apps)}},
            }
        },
    }
    dispatch = {
        "version": 1,
        "experiments": [
            {"id": "big", "command": "python3 job.py {result_file}", "vram_gb": 30, "seeds": [0, 1]},
            {"id": "asks", "command": "python3 job.py {result_file} --other", "vram_gb": "probe"},
        ],
    }
    project = commit_project(
        tmp_path / "project",
        {
            "config/reconciler.yaml": yaml.safe_dump(config),
            "dispatch/jobs.yaml": yaml.safe_dump(dispatch),
            "job.py": JOB,
        },
    )
    env = {**os.environ, **git_env(tmp_path), **fake.env}

    before = cli(project, env, "plan")
    assert "asks: waiting: vram_gb: probe and no measurement yet: run `reconcile probe-vram asks`" in before.stdout

    done = cli(project, env, "probe-vram", "big", "--steps", "4", "--timeout", "60")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "probe-vram big_s0 on lab (NVIDIA H100 80GB HBM3): peak 12 GB" in done.stdout
    book = json.loads((project / "experiments" / "vram.json").read_text())
    (m,) = book["measurements"]
    assert (m["exp_id"], m["base_id"], m["target"], m["peak_gb"], m["steps"]) == ("big_s0", "big", "lab", 12.0, 4)
    assert m["samples"] >= 2 and m["smi_peak_mb"] == 12 * 1024
    subject = "reconcile: probe-vram big_s0: 12 GB on lab (NVIDIA H100 80GB HBM3)"
    assert git(project, "log", "-1", "--format=%s") == subject
    assert git(project, "status", "--porcelain") == ""

    after = cli(project, env, "plan")
    assert "launch big_s0 attempt 1 on lab gpu" in after.stdout
    assert "(VRAM 12 GB, measured on lab (NVIDIA H100 80GB HBM3) at " in after.stdout
    assert "asks: waiting: vram_gb: probe" in after.stdout  # another command: not measured yet

    assert cli(project, env, "--once").returncode in (0, 1)
    status = json.loads(cli(project, env, "status", "--json").stdout)
    estimates = {e["id"]: e.get("vram_estimate") for e in status}
    assert estimates["big_s1"]["gb"] == 12.0 and estimates["big_s1"]["source"].startswith("measured on lab")
    assert estimates["asks"] == {"gb": None, "source": "probe needed"}
    table = cli(project, {**env, "COLUMNS": "400"}, "status", "--wide").stdout
    assert "12 GB (measured" in table
