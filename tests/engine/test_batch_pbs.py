"""The loop on a PBS Pro target, through the project's PBS shim (``tests/shims/pbs``: a file-backed
queue that really runs the jobs and prints PBS Pro's formats; no real PBS can run here)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler.crashpoints import CRASH_EXIT_CODE
from tests.engine.batch_project import all_final, batch_project, passes_until, reconcile, state, with_path
from tests.example.tools import BIN, git

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

SHIM = Path(__file__).resolve().parents[1] / "shims" / "pbs"
TARGET: dict[str, Any] = {
    "kind": "pbs",
    "root": ".reconciler/runs-hpc",
    "python": "python3",
    "batch": {"queue": "gpuvolta", "account": "ab12", "storage": "scratch/ab12", "mem_gb": 4},
}


def shim_env(tmp: Path) -> dict[str, str]:
    return with_path({"PBS_SHIM_DIR": str(tmp / "pbs"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}, SHIM)


def jobs(tmp: Path) -> list[dict[str, Any]]:
    data = json.loads((tmp / "pbs" / "jobs.json").read_text())
    found = data.get("jobs", data)
    return list(found.values()) if isinstance(found, dict) else list(found)


def names(tmp: Path) -> list[str]:
    return sorted(str(j.get("name") or j.get("Job_Name")) for j in jobs(tmp))


def test_example_project_end_to_end_on_pbs(tmp_path: Path) -> None:
    env = shim_env(tmp_path)
    project, env = batch_project(tmp_path, TARGET, env)
    final = passes_until(project, env, all_final)
    assert {e["status"] for e in final.values()} == {"done"}, final
    for entry in final.values():
        assert entry["job_id"].endswith(".pbs-test"), entry
        assert entry["attempts"][-1]["job_id"] == entry["job_id"]
    # One job per experiment: nothing was submitted twice.
    assert len(names(tmp_path)) == 12
    assert len(set(names(tmp_path))) == 12
    # The job script the scheduler got passes the seed's own directive checks.
    script = next((project / ".reconciler" / "runs-hpc" / "runs").glob("*/1/job.sh")).read_text()
    for directive in (
        "#PBS -l walltime",
        "#PBS -l ncpus",
        "#PBS -l ngpus",
        "#PBS -l mem",
        "#PBS -l storage",
        "#PBS -P",
    ):
        assert directive in script, script
    results = sorted((project / "experiments" / "results").glob("*.csv"))
    assert len(results) == 12


def test_crash_between_qsub_and_record_adopts_the_job(tmp_path: Path) -> None:
    env = shim_env(tmp_path)
    project, env = batch_project(tmp_path, TARGET, env, only=["logreg_blobs"])
    crashed = reconcile(project, {**env, "RECONCILER_CRASH_AT": "after_submit"}, "--once")
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    # qsub answered (launches run side by side: one or more); the pass died before recording.
    # A parallel launch may have been killed after its qsub queued the job but before the answer
    # reached submit.out: that job is in the queue with no answer and must be adopted by its name.
    runs = project / ".reconciler" / "runs-hpc" / "runs"
    answered = {p.parent.parent.name: p.read_text().strip() for p in runs.glob("*/1/submit.out")}
    queued = {str(j["id"]) for j in jobs(tmp_path)}
    assert answered and set(answered.values()) <= queued
    final = passes_until(project, env, all_final)
    assert {e["status"] for e in final.values()} == {"done"}
    # Three experiments, three jobs: the interrupted ones were adopted, not submitted again.
    assert len(names(tmp_path)) == 3 and len(set(names(tmp_path))) == 3
    assert all(len(e["attempts"]) == 1 for e in final.values())
    for exp_id, job_id in answered.items():
        assert final[exp_id]["job_id"] == job_id
    # Every job queued before the crash, answered or not, is the one its experiment ran.
    assert queued <= {e["job_id"] for e in final.values()}


def test_scheduler_states_map_to_status_and_failure_class(tmp_path: Path) -> None:
    env = shim_env(tmp_path)
    (tmp_path / "pbs").mkdir()
    (tmp_path / "pbs" / "control.json").write_text(
        json.dumps(
            {
                "node_fail": ["rc.example.logreg_blobs_s0.1.*"],
                "preempt": ["rc.example.logreg_blobs_s1.1.*"],
                "preempt_after": 1.0,
                "hold": ["rc.example.logreg_moons_s0.1.*"],
            }
        )
    )
    project, env = batch_project(
        tmp_path, TARGET, env, only=["logreg_blobs", "logreg_moons"], extra_flags={"logreg_blobs": "--sleep 4"}
    )

    def settled(s: dict[str, dict[str, Any]]) -> bool:
        first = {k: e["attempts"][0] for k, e in s.items() if e.get("attempts")}
        return bool(
            first.get("logreg_blobs_s0", {}).get("failure_class") == "node_fail"
            and first.get("logreg_blobs_s1", {}).get("failure_class") == "preempted"
            and s["logreg_moons_s0"]["status"] == "on_hold"
        )

    now = passes_until(project, env, settled, deadline=120)
    assert "held by the scheduler" in now["logreg_moons_s0"]["notes"]
    # Node failure and preemption are not the job's fault: retried (attempt 2 gets a new job).
    final = passes_until(
        project, env, lambda s: all(s[k]["status"] == "done" for k in ("logreg_blobs_s0", "logreg_blobs_s1"))
    )
    assert next(a["job_id"] for a in final["logreg_blobs_s0"]["attempts"]) != final["logreg_blobs_s0"]["job_id"]


def test_job_cancelled_on_the_cluster_is_cancelled_not_resubmitted(tmp_path: Path) -> None:
    env = shim_env(tmp_path)
    project, env = batch_project(
        tmp_path, TARGET, env, only=["logreg_blobs"], extra_flags={"logreg_blobs": "--sleep 20"}
    )
    running = passes_until(project, env, lambda s: s.get("logreg_blobs_s0", {}).get("status") == "running")
    job = running["logreg_blobs_s0"]["job_id"]
    subprocess.run([str(SHIM / "qdel"), job], env=env, check=True)
    final = passes_until(project, env, lambda s: s["logreg_blobs_s0"]["status"] != "running")
    assert final["logreg_blobs_s0"]["status"] == "cancelled", final["logreg_blobs_s0"]
    before = len(jobs(tmp_path))
    reconcile(project, env, "--once")
    assert len(jobs(tmp_path)) == before


@pytest.mark.parametrize("decision", ["cancel"])
def test_spec_cancel_runs_qdel(tmp_path: Path, decision: str) -> None:
    env = shim_env(tmp_path)
    project, env = batch_project(
        tmp_path, TARGET, env, only=["logreg_blobs"], extra_flags={"logreg_blobs": "--sleep 30"}
    )
    passes_until(project, env, lambda s: s.get("logreg_blobs_s0", {}).get("status") == "running")
    dispatch = project / "dispatch" / "experiments.yaml"
    dispatch.write_text(
        dispatch.read_text().replace(
            "experiments:\n- id: logreg_blobs\n", "experiments:\n- id: logreg_blobs\n  state: cancelled\n"
        )
    )
    git(project, env, "commit", "-qam", "cancel logreg_blobs")
    final = passes_until(project, env, lambda s: all(e["status"] == "cancelled" for e in s.values()))
    assert len(final) == 3
    states = {j.get("job_state") or j.get("state") for j in jobs(tmp_path)}
    assert "R" not in states and "Q" not in states, states


def test_a_busy_qsub_waits_without_using_a_retry_and_a_rejection_fails_the_launch(tmp_path: Path) -> None:
    """Issue 16, item 4: ``qsub`` refusing for now (a per-user queue limit) is no rejection. Nothing
    was submitted: the experiment stays pending with the scheduler's words as its reason, no attempt
    or retry is used and the notes do not grow; once the server takes jobs the same attempt is
    submitted. A real rejection (an unknown queue) fails the launch with its words."""
    env = shim_env(tmp_path)
    (tmp_path / "pbs").mkdir()
    control = tmp_path / "pbs" / "control.json"
    busy = "qsub: would exceed queue workq's per-user limit of jobs in 'Q' state"
    control.write_text(json.dumps({"qsub_fail": busy, "qsub_fail_exit": 38}))
    project, env = batch_project(tmp_path, TARGET, env, only=["logreg_blobs"])
    for _ in range(2):
        done = reconcile(project, env, "--once")
        assert done.returncode == 0, done.stderr
        for entry in state(project).values():
            assert entry["status"] == "pending", entry
            assert entry["attempt"] == 0 and entry["retry_count"] == 0 and not entry.get("attempts"), entry
            assert busy in entry["waiting_reason"], entry["waiting_reason"]
            assert "adopted" not in (entry.get("notes") or ""), entry["notes"]
    assert jobs(tmp_path) == []
    head = git(project, env, "rev-parse", "HEAD").stdout
    again = reconcile(project, env, "--once")
    assert again.returncode == 0, again.stderr
    assert git(project, env, "rev-parse", "HEAD").stdout == head, "a pass that only waited again committed"

    control.write_text(json.dumps({}))
    final = passes_until(project, env, all_final)
    assert {e["status"] for e in final.values()} == {"done"}, final
    assert all(len(e["attempts"]) == 1 and e["attempts"][0]["n"] == 1 for e in final.values()), final

    control.write_text(json.dumps({"qsub_fail": "qsub: Unknown queue", "qsub_fail_exit": 170}))
    (tmp_path / "second").mkdir()
    rejected, env = batch_project(tmp_path / "second", TARGET, env, only=["logreg_moons"])
    reconcile(rejected, env, "--once")
    for entry in state(rejected).values():
        attempt = entry["attempts"][0]
        assert attempt["failure_class"] == "launch_error", entry
        assert "qsub rejected the job: qsub: Unknown queue" in " ".join(attempt.get("evidence", [])), attempt
