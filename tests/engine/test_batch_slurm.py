"""The loop on a real single-node SLURM (``tests/fixtures/slurm.py`` starts munged, slurmctld and
slurmd): the example project end to end, a crash between ``sbatch`` and the status write, and the
controller killed in mid-run."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler.backends.scheduler import job_name
from reconciler.crashpoints import CRASH_EXIT_CODE
from tests.engine.batch_project import all_final, batch_project, passes_until, reconcile
from tests.engine.batch_project import state as state_of
from tests.fixtures.slurm import SlurmCluster

pytestmark = pytest.mark.slurm

TARGET: dict[str, Any] = {
    "kind": "slurm",
    "root": ".reconciler/runs-hpc",
    "python": "python3",
    "batch": {"queue": "debug", "mem_gb": 0.2},
}


def our_jobs(cluster: SlurmCluster, project: Path) -> list[str]:
    """Names of every job SLURM still knows (live or recently finished) that belongs to one of
    this project's run dirs (the name carries a hash of the run dir: other tests' jobs differ)."""
    done = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%j"], env=cluster.env, capture_output=True, text=True, check=True
    )
    runs = (project / ".reconciler" / "runs-hpc" / "runs").resolve()
    mine = {job_name("example", d.parent.name, int(d.name), str(d)) for d in runs.glob("*/*")}
    return sorted(n for n in done.stdout.split() if n in mine)


def test_example_project_end_to_end_on_slurm(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    project, env = batch_project(tmp_path, TARGET, slurm_cluster.env)
    final = passes_until(project, env, all_final, deadline=240)
    assert {e["status"] for e in final.values()} == {"done"}, final
    ids = [e["job_id"] for e in final.values()]
    assert all(i.isdigit() for i in ids) and len(set(ids)) == 12
    script = next((project / ".reconciler" / "runs-hpc" / "runs").glob("*/1/job.sh")).read_text()
    assert "#SBATCH --job-name=rc.example." in script and "#SBATCH --partition=debug" in script
    assert len(list((project / "experiments" / "results").glob("*.csv"))) == 12


def test_crash_between_sbatch_and_record_adopts_the_job(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    project, env = batch_project(tmp_path, TARGET, slurm_cluster.env, only=["mlp_moons"])
    crashed = reconcile(project, {**env, "RECONCILER_CRASH_AT": "after_submit"}, "--once")
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    # sbatch answered (launches run side by side: one or more), no id reached the status file.
    runs = project / ".reconciler" / "runs-hpc" / "runs"
    answered = {p.parent.parent.name: p.read_text().strip().split(";")[0] for p in runs.glob("*/1/submit.out")}
    assert answered
    assert not (project / "dispatch" / "state.json").exists() or all(
        not e.get("job_id") for e in state_of(project).values()
    )
    final = passes_until(project, env, all_final, deadline=180)
    assert {e["status"] for e in final.values()} == {"done"}
    retried = {k: (e["notes"], [a.get("failure_class") for a in e["attempts"]]) for k, e in final.items()}
    assert all(len(e["attempts"]) == 1 for e in final.values()), retried
    for exp_id, job_id in answered.items():
        assert final[exp_id]["job_id"] == job_id  # adopted, not submitted again
    names = [n for n in our_jobs(slurm_cluster, project) if ".mlp_moons_" in n]
    assert len(names) == len(set(names)) == 3, names


def test_controller_killed_mid_run_loses_nothing_and_submits_nothing_twice(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    project, env = batch_project(
        tmp_path, TARGET, slurm_cluster.env, only=["logreg_blobs"], extra_flags={"logreg_blobs": "--sleep 40"}
    )
    # The node has 2 CPUs: two jobs run, the third waits in the queue.
    running = passes_until(
        project,
        env,
        lambda s: (
            len(s) == 3
            and all(e.get("job_id") for e in s.values())
            and any(e["status"] == "running" for e in s.values())
        ),
    )
    jobs = {k: e["job_id"] for k, e in running.items()}
    for job in jobs.values():
        slurm_cluster.wait_state_saved(job)
    slurm_cluster.stop_controller()
    try:
        down = reconcile(project, env, "--once")
        states = passes_until(project, env, lambda s: all(e["status"] == "unreachable" for e in s.values()))
        assert down.returncode in (0, 1), down.stderr
        assert {k: e["job_id"] for k, e in states.items()} == jobs  # unknown, never failed or resubmitted
        assert all(e.get("failure_class") is None for e in states.values())
    finally:
        slurm_cluster.start_controller()
    final = passes_until(project, env, all_final, deadline=180)
    assert {e["status"] for e in final.values()} == {"done"}, final
    assert {k: e["job_id"] for k, e in final.items()} == jobs
    assert all(len(e["attempts"]) == 1 for e in final.values())
