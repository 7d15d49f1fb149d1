"""Commit -> launch latency in watch mode (``reconciler.watch``), measured from outside.

A real watcher process (``python -m reconciler -C <project>``, no ``--once``, poll interval one
hour, so only the watchdog on ``.git`` wakes it) serves a project with one ``ssh`` target (an
in-process asyncssh server of ``benchmarks.sshfleet``). The first experiment is launched and
waited for (the first launch also ships the code and checks the environment). Then, ``rounds``
times: a person appends one experiment to ``dispatch/experiments.yaml`` and runs ``git commit``;
the clock starts when ``git commit`` returns and stops when the new run's wrapper has written
its ``pid`` file on the target (the run is started; the watcher's status commit comes after).
Each new commit changes the desired-state revision, so every round also ships the new code and
re-checks the environment before launching: the latency measured is the whole path. With a
``network`` (``benchmarks.relay``) the target is reached through a delaying relay.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.fleet import GIT_ENV, JOB, PROJECT, git, kill_launched
from benchmarks.relay import Network
from benchmarks.sshfleet import SshFleet

POLL = 0.005


def _spec(i: int) -> str:
    return f"  - id: w{i}\n    command: 'sh job.sh {{exp_id}}'\n"


def _wait(predicate: Any, what: str, deadline: float) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > deadline:
            raise TimeoutError(f"timed out after {deadline:.0f} s waiting for {what}")
        time.sleep(POLL)
    return time.monotonic() - start


def watch_latency(scratch: Path, rounds: int, python: str, network: Network | None = None) -> dict[str, Any]:
    ssh = SshFleet(scratch, ["t0"], procs=1, network=network).start()
    root = str(ssh.hosts["t0"].home / "root")
    project = scratch / "project"
    (project / "config").mkdir(parents=True)
    (project / "dispatch").mkdir()
    target = ssh.target_yaml("t0", root, 100).replace("    max_runs:", f"    python: {python}\n    max_runs:")
    (project / "config" / "reconciler.yaml").write_text(
        f"version: 1\nproject: {PROJECT}\ntargets:\n{target}policies:\n  poll_interval: 3600\n"
    )
    head = "version: 1\ndefaults:\n  targets: [t0]\n  expected_duration_hours: 100\nexperiments:\n"
    dispatch = project / "dispatch" / "experiments.yaml"
    dispatch.write_text(head + _spec(0))
    (project / "job.sh").write_text(JOB)
    (project / ".gitignore").write_text(".reconciler/\n")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "desired state")
    log = scratch / "watch.log"
    env = {**os.environ, **GIT_ENV, "PYTHONUNBUFFERED": "1"}
    root_dir = Path(__file__).resolve().parent.parent
    with log.open("wb") as out:
        watcher = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "-C", str(project)],
            cwd=root_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    latencies: list[float] = []
    wire: dict[str, int] = {}
    try:

        def launched(i: int) -> bool:
            return (Path(root) / "runs" / f"w{i}" / "1" / "pid").exists()

        first = _wait(lambda: launched(0), "the first launch", 120)
        specs = _spec(0)
        for i in range(1, rounds + 1):
            specs += _spec(i)
            dispatch.write_text(head + specs)
            _commit(project, f"add w{i}")
            latencies.append(_wait(lambda i=i: launched(i), f"launch of w{i}", 60))
    except TimeoutError as exc:
        return {"error": f"{exc}; watcher log tail: {log.read_text()[-1500:]}", "latencies_s": latencies}
    finally:
        if ssh.relays is not None:
            wire = ssh.relays.stats()["t0"]
        with contextlib.suppress(OSError):
            os.killpg(watcher.pid, signal.SIGTERM)
        try:
            watcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(watcher.pid, signal.SIGKILL)
            watcher.wait()
        kill_launched([root])
        ssh.stop()
    where = "ssh (in-process asyncssh)" + (f", behind a relay: {network.describe()}" if network else "")
    out: dict[str, Any] = {"first_launch_s": first, "latencies_s": latencies, "rounds": rounds, "target": where}
    if wire:  # the watcher's TCP connections to the target over the whole run (kept: one)
        out["connections"] = wire["connections"]
        out["turns"] = wire["turns"]
    return out


def _commit(project: Path, message: str) -> None:
    """``git commit`` as a person would, retrying while the watcher holds the index lock."""
    end = time.monotonic() + 10
    while True:
        try:
            git(project, "commit", "-q", "-m", message, "--", "dispatch/experiments.yaml")
            return
        except subprocess.CalledProcessError as exc:
            if "index.lock" not in (exc.stderr or "") or time.monotonic() > end:
                raise
            time.sleep(POLL)
