"""Live GPU memory end to end (issue 18, item 2), on real processes: a job that "allocates" more
than its spec's ``vram_gb`` (it registers its pid and memory in the fake ``nvidia-smi``'s table,
the way the real tool lists a compute process) is seen by the probe through its process group,
shown by ``status`` beside its reservation, flagged, and its peak recorded and committed in
``experiments/vram.json``; the next seed of the same command is launched reserving that peak."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import yaml

from reconciler.dashboard.source import read_snapshot
from reconciler.dashboard.views import experiment_rows
from tests.engine.batch_project import passes_until, reconcile
from tests.example.tools import git_env
from tests.fixtures.fake_gpu import FakeGpu, FakeGpus
from tests.projectkit import commit_project, git

JOB = """\
import json, os, sys, time

out, release = sys.argv[1], sys.argv[2]
gpu = int(os.environ["CUDA_VISIBLE_DEVICES"].split(",")[0])
apps = os.environ["VRAM_TEST_APPS"]
with open(os.path.join(apps, "%d.json" % os.getpid()), "w") as f:
    json.dump({"gpu": gpu, "used_memory": 14 * 1024}, f)
end = time.time() + 120
while not os.path.exists(release) and time.time() < end:
    time.sleep(0.2)
exp = os.path.basename(out)[: -len(".csv")]
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
with open(out, "w") as f:
    f.write("exp_id,method,dataset,group,metric,seed,value,host,gpu,finished_at\\n")
    f.write("%s,m,d,main,acc,0,0.9,lab,0,2026-12-06T00:00:00+00:00\\n" % exp)
"""


def test_a_run_over_its_reservation_is_shown_flagged_and_learned(tmp_path: Path, fake_gpus: FakeGpus) -> None:
    apps = tmp_path / "apps"
    apps.mkdir()
    release = tmp_path / "release"
    fake = fake_gpus.local("lab", [FakeGpu(0, memory_used=0)])
    fake.set(fake.gpus, apps_dir=apps)
    config = {
        "version": 1,
        "project": "livevram",
        "targets": {
            "lab": {
                "kind": "local",
                "root": ".reconciler/runs-lab",
                "python": sys.executable,
                "max_runs": 1,
                "gpus": {"blacklist_models": []},
                "env": {"variables": {"VRAM_TEST_APPS": str(apps)}},
            }
        },
    }
    dispatch = {
        "version": 1,
        "experiments": [
            {"id": "sweep", "command": f"python3 job.py {{result_file}} {release}", "vram_gb": 10, "seeds": [0, 1]}
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

    def flagged(state: dict[str, dict[str, object]]) -> bool:
        conditions = state.get("sweep_s0", {}).get("conditions") or []
        return any(c["type"] == "OverReservation" for c in conditions)  # type: ignore[index, union-attr]

    state = passes_until(project, env, flagged, deadline=90)
    s0 = state["sweep_s0"]
    assert s0["status"] == "running" and state["sweep_s1"]["status"] == "pending"
    memory = s0["gpu_memory"]
    assert (memory["gpus"], memory["peak_mb"], memory["reserved_mb"]) == ([[0, 14336.0]], 14336.0, 10240.0)

    # the peak is recorded and committed with the flag
    book = json.loads(git(project, "show", "HEAD:experiments/vram.json"))
    (m,) = book["measurements"]
    assert (m["exp_id"], m["base_id"], m["target"], m["peak_gb"], m["source"]) == (
        "sweep_s0",
        "sweep",
        "lab",
        14.0,
        "live run 1",
    )
    assert m["gpu_model"] == "NVIDIA H100 80GB HBM3"
    log = git(project, "log", "--format=%s%n%b")
    assert "vram sweep_s0: live run 1 used 14 GB on lab, over its reservation: recorded" in log
    assert git(project, "status", "--porcelain") == ""

    # status shows the memory beside the estimate, and the next seed's estimate is the peak
    docs = {d["id"]: d for d in json.loads(reconcile(project, env, "status", "--json").stdout)}
    assert docs["sweep_s0"]["gpu_memory"]["peak_mb"] == 14336.0
    assert docs["sweep_s1"]["vram_estimate"]["gb"] == 14.0
    assert "by sweep_s0's live run 1" in docs["sweep_s1"]["vram_estimate"]["source"]
    table = reconcile(project, {**env, "COLUMNS": "400"}, "status", "--wide").stdout
    assert "used: 14.0 GB now, peak 14.0 of 10 GB reserved (over)" in table
    compact = reconcile(project, env, "status").stdout
    assert "14.0/10 GB peak over" in compact and "14 GB measured" in compact

    # ... and so does the dashboard (its rows API and the experiment page read these rows)
    rows = {r["id"]: r for r in experiment_rows(read_snapshot(project))}
    shown = rows["sweep_s0"]["gpu_memory"]
    assert shown["over"] and shown["text"] == "14.0 GB now, peak 14.0 of 10 GB reserved (over)"
    assert rows["sweep_s1"]["gpu_memory"]["estimate_gb"] == 14.0 and not rows["sweep_s1"]["gpu_memory"]["over"]

    # the run ends; the next seed is launched reserving the measured peak
    release.touch()
    state = passes_until(project, env, lambda s: s["sweep_s1"]["status"] in ("running", "done"), deadline=90)
    assert state["sweep_s0"]["status"] == "done"
    launch = json.loads((project / ".reconciler" / "runs-lab" / "runs" / "sweep_s1" / "1" / "launch.json").read_text())
    assert launch["vram_gb"] == 14.0
    state = passes_until(project, env, lambda s: s["sweep_s1"]["status"] == "done", deadline=90)
    assert not flagged({"sweep_s0": state["sweep_s1"]})  # 14 GB used of 14 reserved: not over
