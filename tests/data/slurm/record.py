"""Re-record the SLURM outputs in this folder from a real single-node cluster (needs root and SLURM).

    .venv/bin/python -m tests.data.slurm.record

Starts the test fixture's cluster in a temp dir, runs real jobs in every state the tests read
(completed, failed, cancelled, timeout, held, pending on resources or begin time, running) and
writes what ``sbatch``, ``squeue``, ``scontrol``, ``scancel``, ``sacct`` and the adapter's own
status/find/cancel commands printed. Job ids, times and paths are whatever the run gave. The
TIMEOUT job needs slurmctld's time-limit check: about one to two minutes.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from reconciler.backends.scheduler import JobRequest
from reconciler.backends.slurm import Slurm
from tests.fixtures.slurm import SlurmCluster, missing, start_cluster
from tests.fixtures.sshd_procs import wait_for

HERE = Path(__file__).parent
SLURM = Slurm()


def submit(cluster: SlurmCluster, work: Path, name: str, body: str, walltime: int = 600, extra: str = "") -> str:
    run_dir = work / name
    run_dir.mkdir()
    (run_dir / "wrapper.sh").write_text(body + "\n")
    request = JobRequest(
        name=f"rc.demo.{name}.1",
        run_dir=str(run_dir),
        wrapper=str(run_dir / "wrapper.sh"),
        output=str(run_dir / "slurm.out"),
        walltime_seconds=walltime,
        gpus=0,
    )
    (run_dir / "job.sh").write_text(SLURM.job_script(request))
    done = cluster.run(f"sbatch --parsable {extra} {run_dir / 'job.sh'}")
    assert done.returncode == 0, done.stderr
    return SLURM.parse_submit(done.stdout)


def state(cluster: SlurmCluster, job_id: str) -> str:
    return cluster.run(f"squeue -h -a -t all -j {job_id} -o %T").stdout.strip()


def save(name: str, text: str) -> None:
    (HERE / name).write_text(text)
    print(f"wrote {name} ({len(text)} bytes)")


def record(cluster: SlurmCluster, work: Path) -> None:
    timeout_id = submit(cluster, work, "timeout", "sleep 600", walltime=60)
    started = time.monotonic()
    ok = submit(cluster, work, "ok", "echo done > result.txt")
    failed = submit(cluster, work, "fail", "exit 3")
    cancelled = submit(cluster, work, "cancel", "sleep 600")
    running = submit(cluster, work, "run", "sleep 600")
    held = submit(cluster, work, "held", "true", extra="--hold")
    later = submit(cluster, work, "later", "true", extra="--begin=now+1hour")
    big = submit(cluster, work, "big", "true", extra="--mem=1900M")  # pending: Resources/Priority
    wait_for(lambda: state(cluster, ok) == "COMPLETED" and state(cluster, failed) == "FAILED", "quick jobs")
    wait_for(lambda: state(cluster, cancelled) == "RUNNING", "job to run")
    cancelled_scancel = cluster.run(SLURM.cancel_command(cancelled))
    wait_for(lambda: state(cluster, cancelled) == "CANCELLED", "cancel")
    wait_for(lambda: state(cluster, running) == "RUNNING", "job to run")

    save("sbatch_parsable.txt", cluster.run(f"sbatch --parsable --hold {work / 'held' / 'job.sh'}").stdout)
    save("squeue_states.txt", cluster.run("squeue -h -a -t all -o '%i|%T|%r|%j'").stdout)
    for label, job_id in (("completed", ok), ("failed", failed), ("cancelled", cancelled), ("held", held)):
        save(f"scontrol_{label}.txt", cluster.run(f"scontrol show job -o {job_id}").stdout)
    save("scontrol_running.txt", cluster.run(f"scontrol show job -o {running}").stdout)
    save("scontrol_invalid.txt", cluster.run("scontrol show job -o 999999").stderr)
    save("sacct_disabled.txt", cluster.run(f"sacct -X -P -n -o JobID,JobName,State,ExitCode,Reason -j {ok}").stderr)
    save("cancel_running.txt", cancelled_scancel.stdout + cancelled_scancel.stderr)
    gone = cluster.run(SLURM.cancel_command("999999"))
    save("cancel_gone.txt", f"# exit {gone.returncode}\n{gone.stdout}{gone.stderr}")
    gone_v = cluster.run("scancel -v 999999")
    save("scancel_verbose_gone.txt", f"# exit {gone_v.returncode}\n{gone_v.stdout}{gone_v.stderr}")
    save("find_live.txt", cluster.run(SLURM.find_command("rc.demo.run.1")).stdout)
    save("find_none.txt", cluster.run(SLURM.find_command("rc.demo.nonesuch.1")).stdout)

    ids = [ok, failed, cancelled, running, held, later, big, timeout_id, "999999"]
    names = ["rc.demo.run.1", "rc.demo.nonesuch.1"]
    save("status_mixed.txt", cluster.run(SLURM.status_command(ids, names)).stdout)
    save("status_empty.txt", cluster.run(SLURM.status_command([], [])).stdout)
    save("status_unknown.txt", cluster.run(SLURM.status_command(["999998", "999999"], ["rc.demo.gone.1"])).stdout)

    wait_for(lambda: state(cluster, timeout_id) == "TIMEOUT", "TIMEOUT", attempts=15000)
    print(f"TIMEOUT after {time.monotonic() - started:.0f} s")
    save("scontrol_timeout.txt", cluster.run(f"scontrol show job -o {timeout_id}").stdout)
    save("status_timeout.txt", cluster.run(SLURM.status_command([timeout_id], [])).stdout)

    cluster.stop_controller()
    save("status_controller_down.txt", cluster.run(SLURM.status_command(ids, names)).stdout)
    down = cluster.run(f"sbatch --parsable {work / 'ok' / 'job.sh'}")
    save("sbatch_controller_down.txt", f"# exit {down.returncode}\n{down.stdout}{down.stderr}")
    find_down = cluster.run(SLURM.find_command("rc.demo.run.1"))
    save("find_controller_down.txt", f"{find_down.stdout}{find_down.stderr}")
    cancel_down = cluster.run(SLURM.cancel_command(running))
    save("cancel_controller_down.txt", f"# exit {cancel_down.returncode}\n{cancel_down.stdout}{cancel_down.stderr}")
    cluster.start_controller()
    save("status_after_restart.txt", cluster.run(SLURM.status_command([running], [])).stdout)


def main() -> int:
    reason = missing()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix="rc-slurm-rec-"))
    try:
        cluster = start_cluster(root / "cluster")
        try:
            work = root / "runs"
            work.mkdir()
            record(cluster, work)
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
