"""Runs the seed started (``model.seedrun``), as the probe and the kill see them, on real processes.

Each run is launched the way the seed's ``exec_local`` launched it: in its checkout,
``nohup bash -c '<cmd> > experiments/logs/<ID>.log 2>&1; echo EXIT_CODE:$?' >
experiments/logs/<ID>_exit.log & echo $!``; the recorded pid is that wrapper's.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from reconciler.backends.batch import with_jobs
from reconciler.backends.local import LocalTransport
from reconciler.backends.pbs import Pbs
from reconciler.backends.scheduler import JobInfo, JobState
from reconciler.backends.shell import ShellRunner
from reconciler.model.actions import Cancel, Kill
from reconciler.model.config import Target, TargetKind
from reconciler.model.observed import RunObservation, TargetObservation
from reconciler.model.seedrun import SEED, seed_run
from tests.fixtures.sshd_procs import process_alive, wait_for

RESULT = "experiments/results/{id}.csv"


def seed_launch(checkout: Path, exp_id: str, command: str) -> int:
    """Start ``command`` as the seed's wrapper did; returns the pid the seed recorded."""
    (checkout / "experiments" / "logs").mkdir(parents=True, exist_ok=True)
    (checkout / "experiments" / "results").mkdir(parents=True, exist_ok=True)
    script = (
        f"nohup bash -c '{command} > experiments/logs/{exp_id}.log 2>&1; echo EXIT_CODE:$?'"
        f" > experiments/logs/{exp_id}_exit.log 2>&1 & echo $!"
    )
    out = subprocess.run(["sh", "-c", script], cwd=checkout, capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def runner(tmp_path: Path) -> ShellRunner:
    target = Target(name="lab1", kind=TargetKind.LOCAL, root=str(tmp_path / "root"))
    return ShellRunner(target, LocalTransport(), tmp_path, "demo", kill_grace=2.0)


def now_iso(delta_s: float = 0.0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=delta_s)).isoformat()


def look(
    tmp_path: Path,
    checkout: Path,
    exp_id: str,
    pid: int | None,
    *,
    started: str | None,
    start_time: str | None = None,
) -> RunObservation:
    run = seed_run(exp_id, str(checkout), RESULT.format(id=exp_id), pid, start_time, started, None)

    async def probe() -> RunObservation:
        observation = await runner(tmp_path).probe(seed={(exp_id, 1): run})
        seen = observation.run(exp_id, 1)
        assert seen is not None
        return seen

    return asyncio.run(probe())


def test_a_live_seed_run_is_seen_by_its_pid(tmp_path: Path) -> None:
    checkout = tmp_path / "proj"
    pid = seed_launch(checkout, "A_s0", "sleep 30")
    try:
        seen = look(tmp_path, checkout, "A_s0", pid, started=now_iso())
        assert seen.token == SEED and seen.launched
        assert seen.alive and seen.pid == pid and seen.exit_code is None
        assert seen.start_time and seen.started_age is not None and seen.started_age < 60
        # once its start time is known, only that start time is the run
        again = look(tmp_path, checkout, "A_s0", pid, started=None, start_time=seen.start_time)
        assert again.alive
        other = look(tmp_path, checkout, "A_s0", pid, started=None, start_time="1")
        assert not other.alive
    finally:
        os.kill(pid, 9)


def test_an_ended_seed_run_reports_its_exit_code_log_and_result(tmp_path: Path) -> None:
    checkout = tmp_path / "proj"
    checkout.mkdir()
    job = "echo step 1\nprintf 'exp_id,metric,value\\nB_s0,acc,0.5\\n' > experiments/results/B_s0.csv\nexit 3\n"
    (checkout / "job.sh").write_text(job)
    pid = seed_launch(checkout, "B_s0", "sh job.sh")
    wait_for(lambda: not process_alive(pid), "the seed run to end")
    seen = look(tmp_path, checkout, "B_s0", pid, started=now_iso())
    assert not seen.alive and seen.exit_code == 3
    assert seen.log_tail == ("step 1",)
    assert seen.result_size and seen.result_size > 0


def test_a_reused_pid_is_not_the_seed_run(tmp_path: Path) -> None:
    """A live process of the same user that neither names the experiment nor started near the
    seed's ``started`` is another process: the run is over (its exit log says how)."""
    checkout = tmp_path / "proj"
    (checkout / "experiments" / "logs").mkdir(parents=True)
    (checkout / "experiments" / "logs" / "C_s0_exit.log").write_text("nohup: ignoring input\nEXIT_CODE:0\n")
    other = subprocess.Popen(["sleep", "30"])
    try:
        seen = look(tmp_path, checkout, "C_s0", other.pid, started=now_iso(-3 * 86400))
        assert not seen.alive and seen.exit_code == 0 and seen.start_time is None
        # started near the seed's time, it is taken for the seed's process (the wrapper's command
        # line may not name the experiment: the seed's supervisor launched differently)
        near = look(tmp_path, checkout, "C_s0", other.pid, started=now_iso(-5))
        assert near.alive and near.exit_code is None
    finally:
        other.kill()
        other.wait()


def test_a_symlinked_result_or_log_is_not_read(tmp_path: Path) -> None:
    checkout = tmp_path / "proj"
    (checkout / "experiments" / "logs").mkdir(parents=True)
    (checkout / "experiments" / "results").mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.write_text("root:x:0:0\n")
    (checkout / "experiments" / "results" / "D_s0.csv").symlink_to(secret)
    (checkout / "experiments" / "logs" / "D_s0.log").symlink_to(secret)
    seen = look(tmp_path, checkout, "D_s0", None, started=None)
    assert seen.result_size is None and seen.log_tail == ()


def test_killing_a_seed_run_stops_its_tree_and_spares_a_reused_pid(tmp_path: Path) -> None:
    checkout = tmp_path / "proj"
    checkout.mkdir()
    (checkout / "job.sh").write_text("sleep 60 &\nsleep 60\nwait\n")
    pid = seed_launch(checkout, "E_s0", "sh job.sh")
    seen = look(tmp_path, checkout, "E_s0", pid, started=now_iso())
    assert seen.alive and seen.start_time
    children = _descendants(pid)
    assert len(children) == 3

    def kill(start: str) -> bool:
        action = Kill("E_s0", "lab1", 1, str(checkout), pid, start, reason=Cancel("test"), tree=True)
        return asyncio.run(runner(tmp_path).kill(action))

    assert kill("1") is True  # another start time: "reused", nothing touched
    assert process_alive(pid) and all(process_alive(c) for c in children)
    assert kill(seen.start_time) is True
    wait_for(lambda: not process_alive(pid) and not any(process_alive(c) for c in children), "the tree to die")


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid`` once the job's three are up (``sh job.sh`` and its two sleeps)."""
    deadline = time.monotonic() + 10
    while True:
        out = subprocess.run(["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
        parent = {int(a): int(b) for a, b in (line.split() for line in out.splitlines())}
        below, grew = {pid}, True
        while grew:
            more = {p for p, pp in parent.items() if pp in below} - below
            below |= more
            grew = bool(more)
        found = sorted(below - {pid})
        if len(found) >= 3 or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_seed_job_takes_its_exit_code_from_the_scheduler() -> None:
    """No wrapper of ours records a seed job's exit code: the scheduler's word for a completed or
    failed job is it; walltime and the like are left to the job rules, as for ours."""
    key = ("G_s0", 1)
    seen = RunObservation("G_s0", 1, token=SEED, launched=True, job_id="77.gadi-pbs")
    observation = TargetObservation("gadi", True, runs={key: seen})

    def after(state: JobState, exit_status: int | None) -> RunObservation:
        info = JobInfo("77.gadi-pbs", None, state, state.value, exit_status=exit_status)
        jobs = with_jobs(observation, {"77.gadi-pbs": info}, frozenset({"77.gadi-pbs"}), {key: "77.gadi-pbs"}, Pbs())
        return jobs.runs[key]

    assert after(JobState.RUNNING, None).alive
    assert after(JobState.COMPLETED, None).exit_code == 0
    assert after(JobState.COMPLETED, 0).exit_code == 0
    assert after(JobState.FAILED, 2).exit_code == 2
    timed_out = after(JobState.TIMEOUT, 271)
    assert timed_out.exit_code is None and timed_out.job_state == "timeout"
    ours = RunObservation("G_s0", 1, token="abc", launched=True, job_id="77.gadi-pbs")
    info = JobInfo("77.gadi-pbs", None, JobState.COMPLETED, "F", exit_status=0)
    mine = with_jobs(
        TargetObservation("gadi", True, runs={key: ours}),
        {"77.gadi-pbs": info},
        frozenset(),
        {key: "77.gadi-pbs"},
        Pbs(),
    )
    assert mine.runs[key].exit_code is None  # ours: only the run dir's exit code counts
