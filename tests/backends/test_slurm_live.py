"""The SLURM adapter against a real single-node SLURM (``tests/fixtures/slurm.py``).

Every command is the adapter's own text run with ``sh -c``; every job script is
``Slurm.job_script`` and it ``exec``s the real run wrapper (``wrapper.wrapper_script``), which
writes pid, heartbeat and ``exit_code`` into the run dir. Jobs block on a release file the test
creates, so nothing depends on sleeping a fixed time (this VM skips idle time).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.backends import wrapper
from reconciler.backends.scheduler import JobInfo, JobRequest, JobState
from reconciler.backends.slurm import Slurm
from reconciler.errors import SchedulerOutputError
from reconciler.model.actions import Launch
from reconciler.model.config import EnvActivation
from tests.fixtures.slurm import SlurmCluster
from tests.fixtures.sshd_procs import wait_for

pytestmark = pytest.mark.slurm

SLURM = Slurm()
PROJECT = "demo"


@dataclass
class Job:
    job_id: str
    name: str
    run_dir: Path
    release: Path
    result: Path


def submit(cluster: SlurmCluster, tmp_path: Path, exp_id: str, walltime: int = 600, block: bool = True) -> Job:
    """Write the real wrapper and the adapter's job script into a run dir and ``sbatch`` it.
    The job's command writes its result once ``release`` exists (at once when not ``block``)."""
    run_dir = tmp_path / "runs" / exp_id / "1"
    code_dir = tmp_path / "code"
    code_dir.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True)
    release = run_dir / "release"
    result = run_dir / "out" / "result.csv"
    wait = f"while [ ! -e {release} ]; do sleep 0.1; done; " if block else ""
    action = Launch(
        exp_id=exp_id,
        target="slurm",
        attempt=1,
        command=f'{wait}echo "value,1" > {result}',
        run_dir=str(run_dir),
        token="tok-" + exp_id,
        code_dir=str(code_dir),
        commit="abc",
        result_file="out/result.csv",
        checkpoint_dir=str(tmp_path / "ckpt" / exp_id),
    )
    (run_dir / "wrapper.sh").write_text(wrapper.wrapper_script(action, EnvActivation(), PROJECT))
    request = JobRequest(
        name=f"rc.{PROJECT}.{exp_id}.1",
        run_dir=str(run_dir),
        wrapper=str(run_dir / "wrapper.sh"),
        output=str(run_dir / "slurm.out"),
        walltime_seconds=walltime,
        gpus=0,
    )
    script = run_dir / "job.sh"
    script.write_text(SLURM.job_script(request))
    done = cluster.run(SLURM.submit_command(str(script), request))
    assert done.returncode == 0, done.stderr
    return Job(SLURM.parse_submit(done.stdout), request.name, run_dir, release, result)


def status(cluster: SlurmCluster, ids: list[str], names: list[str] | None = None) -> Mapping[str, JobInfo]:
    done = cluster.run(SLURM.status_command(ids, names or []))
    assert done.returncode == 0, done.stderr
    return SLURM.parse_status(done.stdout)


def state_of(cluster: SlurmCluster, job: Job) -> JobState | None:
    info = status(cluster, [job.job_id]).get(job.job_id)
    return None if info is None else info.state


def wait_state(cluster: SlurmCluster, job: Job, wanted: JobState, attempts: int = 1500) -> JobInfo:
    wait_for(lambda: state_of(cluster, job) is wanted, f"job {job.job_id} {wanted.value}", attempts=attempts)
    return status(cluster, [job.job_id])[job.job_id]


def find(cluster: SlurmCluster, name: str) -> list[str]:
    done = cluster.run(SLURM.find_command(name))
    return SLURM.parse_find(done.stdout)


def test_job_runs_the_wrapper_and_completes(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    job = submit(slurm_cluster, tmp_path, "ok")
    first = status(slurm_cluster, [job.job_id, "999999"], [job.name])
    assert first[job.job_id].state in (JobState.QUEUED, JobState.RUNNING)
    assert first[job.job_id].name == job.name
    assert "999999" not in first  # unknown to slurmctld: absent, and the command did not fail

    running = wait_state(slurm_cluster, job, JobState.RUNNING)
    assert running.exit_status is None
    wait_for(lambda: (job.run_dir / "pid").exists() and (job.run_dir / "heartbeat").exists(), "wrapper started")
    assert (job.run_dir / "launch.lock").is_dir()
    assert not (job.run_dir / "exit_code").exists()

    job.release.touch()
    done = wait_state(slurm_cluster, job, JobState.COMPLETED)
    assert (done.exit_status, done.raw_state, done.name) == (0, "COMPLETED", job.name)
    assert (job.run_dir / "exit_code").read_text().strip() == "0"
    assert job.result.read_text() == "value,1\n"
    assert find(slurm_cluster, job.name) == [job.job_id]  # a finished job slurmctld remembers is found


def test_cancel_shows_cancelled_and_a_second_cancel_is_quiet(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    job = submit(slurm_cluster, tmp_path, "cancel")
    wait_state(slurm_cluster, job, JobState.RUNNING)
    wait_for(lambda: (job.run_dir / "pid").exists(), "wrapper started")
    first = slurm_cluster.run(SLURM.cancel_command(job.job_id))
    assert first.returncode == 0, first.stderr
    info = wait_state(slurm_cluster, job, JobState.CANCELLED)
    assert info.raw_state == "CANCELLED"
    assert info.exit_status == 0  # the wrapper survives the TERM, records 143 and exits 0
    wait_for(lambda: (job.run_dir / "exit_code").exists(), "wrapper to record the signal")
    assert (job.run_dir / "exit_code").read_text().strip() == "143"
    assert not job.result.exists()
    again = slurm_cluster.run(SLURM.cancel_command(job.job_id))
    assert again.returncode == 0, again.stderr
    gone = slurm_cluster.run(SLURM.cancel_command("999999"))
    assert gone.returncode == 0, gone.stderr


def test_find_command_finds_a_live_job_by_name(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    job = submit(slurm_cluster, tmp_path, "found")
    assert find(slurm_cluster, job.name) == [job.job_id]
    assert find(slurm_cluster, f"rc.{PROJECT}.nonesuch.1") == []
    by_name = status(slurm_cluster, [], [job.name])
    assert list(by_name) == [job.job_id]
    job.release.touch()
    wait_state(slurm_cluster, job, JobState.COMPLETED)


def test_quick_jobs_run_side_by_side(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    jobs = [submit(slurm_cluster, tmp_path, f"pair{i}") for i in range(2)]
    ids = [job.job_id for job in jobs]
    wait_for(
        lambda: all(info.state is JobState.RUNNING for info in status(slurm_cluster, ids).values()),
        "both jobs running at once",
        attempts=1500,
    )
    for job in jobs:
        job.release.touch()
    for job in jobs:
        wait_state(slurm_cluster, job, JobState.COMPLETED)


def test_controller_crash_mid_run_loses_nothing_and_duplicates_nothing(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    job = submit(slurm_cluster, tmp_path, "crash")
    wait_state(slurm_cluster, job, JobState.RUNNING)
    slurm_cluster.wait_state_saved(job.job_id)  # crash after slurmctld saved the start (see the fixture)

    slurm_cluster.stop_controller()
    down = slurm_cluster.run(SLURM.status_command([job.job_id], [job.name]))
    assert down.returncode == 0
    with pytest.raises(SchedulerOutputError, match="Unable to contact slurm controller"):
        SLURM.parse_status(down.stdout)  # the cluster does not answer: never "the job is gone"
    with pytest.raises(SchedulerOutputError):
        SLURM.parse_find(slurm_cluster.run(SLURM.find_command(job.name)).stdout)
    job.release.touch()  # the job finishes while slurmctld is down
    wait_for(lambda: (job.run_dir / "exit_code").exists(), "job to finish on the node")

    slurm_cluster.start_controller()
    done = wait_state(slurm_cluster, job, JobState.COMPLETED)
    assert done.exit_status == 0
    assert find(slurm_cluster, job.name) == [job.job_id]  # one job under that name: not submitted twice
    assert list(status(slurm_cluster, [], [job.name])) == [job.job_id]
    assert (job.run_dir / "exit_code").read_text().strip() == "0"
    assert job.result.read_text() == "value,1\n"
    assert slurm_cluster.node_state() in ("idle", "mixed", "allocated")


@pytest.mark.slow
def test_walltime_exceeded_is_timeout(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    """A 1-minute limit: slurmctld checks limits every 30 s, so this takes about 60-100 s."""
    job = submit(slurm_cluster, tmp_path, "timeout", walltime=60)
    wait_state(slurm_cluster, job, JobState.RUNNING)
    started = time.monotonic()
    info = wait_state(slurm_cluster, job, JobState.TIMEOUT, attempts=15000)
    assert (info.raw_state, info.reason) == ("TIMEOUT", "TimeLimit")
    wait_for(lambda: (job.run_dir / "exit_code").exists(), "wrapper to record the signal")
    assert (job.run_dir / "exit_code").read_text().strip() == "143"
    assert not job.result.exists()
    assert time.monotonic() - started < 600
    assert os.environ.get("SLURM_CONF") != slurm_cluster.env["SLURM_CONF"]  # the test process stays clean
