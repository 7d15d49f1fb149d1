"""The issue-14 checks of the chaos suite, fast: each sees the violation it exists for, and says
nothing about a world that keeps it (no false alarm). The fake ``nvidia-smi`` is run for real
against a live job process and its output parsed by the project's own parser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.backends.gpus import APPS_QUERY, GPU_QUERY, build_gpus
from tests.chaos import gpus, invariants
from tests.chaos.scenarios import generate, is_gpu, is_ssh

SEED = 20261205
IDENTITY = ["-c", "user.name=t", "-c", "user.email=t@localhost"]
BOT = ["-c", "user.name=reconciler", "-c", "user.email=reconciler@localhost"]


def run(host: str, exp: str, gpu_list: tuple[int, ...], mb: int = 30720) -> gpus.LiveRun:
    return gpus.LiveRun(pid=1, host=host, exp_id=exp, attempt="1", gpus=gpu_list, vram_mb=mb)


def test_gpu_invariant_counts_runs_and_reservations_per_gpu() -> None:
    tables = {"ta": (gpus.GpuHost(0), gpus.GpuHost(1, base_used=30004))}
    two = [run("ta", "e0_s0", (0,)), run("ta", "e0_s1", (0,))]
    assert gpus.gpu_violations(two, tables, max_runs_per_gpu=2, vram_factor=1.2) == {}
    assert "2 live runs > max_runs_per_gpu 1" in gpus.gpu_violations(two, tables, 1, 1.2)[("ta", 0)]
    # 40 GB + 30 GB x 1.2 = 86016 MiB > 81555: the second was placed on what nvidia-smi showed free.
    big = [run("ta", "e0_s0", (0,), 40960), run("ta", "e1_s0", (0,))]
    assert "reserves 86016 MiB" in gpus.gpu_violations(big, tables, 2, 1.2)[("ta", 0)]
    # A foreign load counts: one 30 GB run (36864 reserved) fits 51551, two do not.
    assert gpus.gpu_violations([run("ta", "e0_s0", (1,))], tables, 2, 1.2) == {}
    assert ("ta", 1) in gpus.gpu_violations([run("ta", "e0_s0", (1,)), run("ta", "e0_s1", (1,))], tables, 2, 1.2)
    # The same run seen twice (two processes of one attempt) is one run; other hosts are apart.
    same = [run("ta", "e0_s0", (0,)), run("ta", "e0_s0", (0,)), run("tb", "e1_s0", (0,))]
    assert gpus.gpu_violations(same, {**tables, "tb": (gpus.GpuHost(0),)}, 1, 1.2) == {}


def test_fake_nvidia_smi_follows_the_live_jobs(tmp_path: Path) -> None:
    tables = {"ta": (gpus.GpuHost(0), gpus.GpuHost(1, base_used=1000))}
    gpus.install(tmp_path / "bin", tmp_path / "gpus", tables)
    (tmp_path / "job.py").write_text("import time\ntime.sleep(60)\n")
    tag = f"t-{tmp_path.name}"
    env = {**os.environ, "CHAOS_TAG": tag, "CHAOS_GPU_HOST": "ta", "CHAOS_GPU_DIR": str(tmp_path / "gpus")}

    def smi() -> tuple[str, str]:
        out = [
            subprocess.run([str(tmp_path / "bin" / "nvidia-smi"), *q[1:]], env=env, capture_output=True, text=True)
            for q in (GPU_QUERY, APPS_QUERY)
        ]
        assert [o.returncode for o in out] == [0, 0], out
        return out[0].stdout, out[1].stdout

    idle = build_gpus(*smi())
    assert [(g.index, g.memory_used_mb) for g in idle] == [(0, 4), (1, 1000)]
    job_env = {**env, "CUDA_VISIBLE_DEVICES": "1", "CHAOS_VRAM_MB": "20480", "EXP_ID": "e0_s0"}
    job = subprocess.Popen([sys.executable, "job.py"], cwd=tmp_path, env=job_env)
    try:
        for _ in range(200):
            live = gpus.live_runs(tag)
            if live:
                break
            subprocess.run(["sleep", "0.02"], check=True)
        assert [(r.pid, r.gpus, r.vram_mb, r.exp_id) for r in live] == [(job.pid, (1,), 20480, "e0_s0")]
        gpu_text, apps_text = smi()
        busy = build_gpus(gpu_text, apps_text)
        assert [(g.index, g.memory_used_mb) for g in busy] == [(0, 4), (1, 21480)]
        assert apps_text == f"{job.pid}, {tables['ta'][1].uuid}, 20480\n"
    finally:
        job.kill()
        job.wait()
    assert gpus.live_runs(tag) == []
    assert build_gpus(*smi())[1].memory_used_mb == 1000
    bad = subprocess.run([str(tmp_path / "bin" / "nvidia-smi"), "-L"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2


def git(cwd: Path, *args: str) -> str:
    # The identity comes from the -c options alone: no GIT_* variable of the caller's overrides it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout.strip()


def entry(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "e0_s0",
        "seed": 0,
        "status": "running",
        "attempt": 1,
        "command": "python3 job.py --exp {exp_id} --out {result_file}",
        "unreachable": {"consecutive": 0, "total": 0, "probes": 0},
        "attempts": [{"n": 1, "target": "ta"}],
    }
    base.update(fields)
    return base


def commit_state(project: Path, entries: list[dict[str, Any]], who: list[str] = BOT) -> str:
    (project / "dispatch").mkdir(exist_ok=True)
    (project / "dispatch" / "state.json").write_text(json.dumps({"experiments": entries}))
    git(project, *who, "add", "-A")
    git(project, *who, "commit", "-qm", "reconcile: record status")
    return git(project, "rev-parse", "HEAD")


def test_noise_commits_are_those_without_a_transition(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    first = commit_state(tmp_path, [entry()])
    counters = commit_state(tmp_path, [entry(unreachable={"consecutive": 1, "total": 1, "probes": 1})])
    noise = invariants.noise_commits(tmp_path, first, counters, "reconciler@localhost")
    assert len(noise) == 1
    assert "unreachable" in invariants.projection_diff(tmp_path, first, counters)
    done = commit_state(tmp_path, [entry(status="done")])
    assert invariants.noise_commits(tmp_path, counters, done, "reconciler@localhost") == []
    person = commit_state(tmp_path, [entry(status="done", notes="x")], who=IDENTITY)
    assert invariants.noise_commits(tmp_path, done, person, "reconciler@localhost") == []


def test_untracked_files_are_seen_unless_ignored(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / ".gitignore").write_text(".reconciler/\n")
    (tmp_path / ".reconciler").mkdir()
    (tmp_path / ".reconciler" / "x").write_text("")
    (tmp_path / "experiments" / "logs").mkdir(parents=True)
    assert invariants.untracked_files(tmp_path) == [".gitignore"]
    git(tmp_path, *IDENTITY, "add", ".gitignore")
    assert invariants.untracked_files(tmp_path) == []
    (tmp_path / "experiments" / "logs" / ".e0_s0.md.123.ab.tmp").write_text("")
    assert invariants.untracked_files(tmp_path) == ["experiments/logs/.e0_s0.md.123.ab.tmp"]


def test_provenance_compares_a_done_entry_with_its_run_dir(tmp_path: Path) -> None:
    project, root = tmp_path / "project", tmp_path / "root"
    run_dir = root / "runs" / "e0_s0" / "1"
    run_dir.mkdir(parents=True)
    result = run_dir / "out.csv"
    result.write_text("row from attempt 1\n")
    ran = f"python3 job.py --exp e0_s0 --out {result}"
    wrapper = f"  cd {root}/code/abc123 || exit 112\n  export CUDA_VISIBLE_DEVICES=1\n  exec sh -c '{ran}'\n"
    (run_dir / "wrapper.sh").write_text(wrapper)
    (run_dir / "result_path").write_text(str(result))
    (run_dir / "exit_code").write_text("0\n")
    (run_dir / "token").write_text("tok")
    (project / "experiments" / "results").mkdir(parents=True)
    (project / "experiments" / "results" / "e0_s0.csv").write_text("row from attempt 1\n")
    attempt = {"n": 1, "target": "ta", "token": "tok", "command": ran, "git_commit": "abc123", "gpus": [1]}
    good = entry(status="done", target="ta", git_commit="abc123", attempts=[attempt])
    roots = {"ta": root, "tb": tmp_path / "other"}
    assert invariants.provenance_violations(project, {"e0_s0": good}, roots) == []
    edited = {**good, "command": "python3 job.py --exp {exp_id} --out {result_file} --lr 0.1"}
    assert "but its run dir ran" in invariants.provenance_violations(project, {"e0_s0": edited}, roots)[0]
    moved = {**good, "target": "tb"}
    assert "no run dir" in invariants.provenance_violations(project, {"e0_s0": moved}, roots)[0]
    adopted = {**good, "attempts": [{**attempt, "gpus": []}]}
    assert (
        "GPUs [] but its run dir ran on [1]" in invariants.provenance_violations(project, {"e0_s0": adopted}, roots)[0]
    )
    newer = {**good, "git_commit": "def456"}
    assert "records commit def456" in invariants.provenance_violations(project, {"e0_s0": newer}, roots)[0]
    (project / "experiments" / "results" / "e0_s0.csv").write_text("row from attempt 2\n")
    assert "not the result" in invariants.provenance_violations(project, {"e0_s0": good}, roots)[0]


def test_gpu_and_ssh_shares_are_seed_stable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOS_BATCH", "0")
    scenarios = [generate(SEED, i) for i in range(60)]
    kinds = {s.kind for s in scenarios}
    assert kinds == {"local", "gpu", "ssh"}
    for s in scenarios:
        assert (s.kind == "ssh") == is_ssh(SEED, s.index)
        assert s.kind != "gpu" or is_gpu(SEED, s.index)
        if s.gpu:
            assert s.max_runs_per_gpu in (1, 2)
            assert all(20 <= e["vram"] <= 40 for e in s.experiments)
    steps = {step.kind for s in scenarios for step in s.steps}
    assert "kill" in steps
    assert {"drop", "slow", "concurrent"}.isdisjoint(step.kind for s in scenarios if s.ssh for step in s.steps)
