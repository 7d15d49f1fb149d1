"""The simulated fleet: a real project (git repo) with H ``ssh`` targets and N experiments in
every phase, built so that the reconciler's own passes record them.

Experiments (seeds expand to ``<id>_s<seed>``; the done and running ones are spread round-robin
over the targets, one spec per phase and target, eligible for that target only):

- ``fin_<target>_s*`` (``done``): a pre-created run dir per experiment, exactly what the wrapper leaves
  behind (token, ``launch.lock/``, pid, start time, host, heartbeat, ``result_path``,
  ``stdout.log``, ``exit_code`` 0 and the canonical result CSV). No process: they are finished.
- ``live_<target>_s*`` (``running``): a pre-created run dir whose pid and start time are those of a real
  process that keeps running (``sleep``, in its own session, one process per run).
- ``wait_s*`` (``pending``): nothing on the targets. Each target's ``max_runs`` is its number of
  live runs, so they wait for a free slot: the planner sees them on every pass and has nothing
  to do for them.

The run dirs carry the deterministic launch token (``reconciler.model.ids.launch_token``), so a
pass *adopts* them (the code path of a pass that crashed after starting a run) instead of
launching, and pulls the finished ones' results back over SFTP. The desired state is committed
in batches (``add``), done first, then running, then pending (so no pending one finds a free
slot), one pass after each: a pass whose commit records more than about 3,000 transitions fails
(the commit message is passed to ``git commit-tree -m`` as one argument, over the kernel's
128 KiB limit), so a 10,000-experiment world is built 1,500 at a time. With a ``network``, every
target is reached through a delaying relay (``benchmarks.relay``, ``benchmarks.network``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.relay import Network
from benchmarks.sshfleet import SshFleet
from reconciler.model.ids import launch_token, run_dir

PROJECT = "bench"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}
CSV_HEADER = "exp_id,method,dataset,group,metric,seed,value,host,gpu,finished_at"
JOB = """\
# Benchmark job: the environment check's --dry-run exits at once; a real run sleeps.
case " $* " in *" --dry-run "*) exit 0 ;; esac
exec sleep 100000
"""


@dataclass(frozen=True)
class Split:
    """How many experiments are in each phase."""

    done: int
    running: int
    pending: int

    @classmethod
    def of(cls, n: int, done: float = 0.4, running: float = 0.3) -> Split:
        d = round(n * done)
        r = round(n * running)
        return cls(d, r, n - d - r)

    @property
    def total(self) -> int:
        return self.done + self.running + self.pending


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env)
    return done.stdout.strip()


def _seeds(k: int) -> str:
    return "[" + ", ".join(str(i) for i in range(k)) + "]"


def dispatch_yaml(placed: dict[tuple[str, str], int], pending: int, targets: list[str]) -> str:
    """``placed``: ``(phase, target) -> count`` of pre-created runs (one spec each, eligible for
    that target only: while its target is silent such an experiment stays pending, as the
    in-flight journal would keep a real one); ``pending``: the waiting ones, any target."""
    command = "    command: 'sh job.sh {exp_id} {seed} {result_file}'\n"
    specs = [
        f"  - id: {phase}_{target}\n{command}    seeds: {_seeds(count)}\n    targets: [{target}]\n"
        for (phase, target), count in placed.items()
        if count
    ]
    if pending:
        specs.append(f"  - id: wait\n{command}    seeds: {_seeds(pending)}\n")
    head = textwrap.dedent(
        f"""\
        version: 1
        defaults:
          expected_duration_hours: 100
          targets: [{", ".join(targets)}]
          max_retries: 0
          group: main
          method: m
          dataset: d
        experiments:
        """
    )
    return head + "".join(specs)


def config_yaml(
    ssh: SshFleet, roots: dict[str, str], python: str, max_runs: dict[str, int], poll_interval: float = 3600
) -> str:
    targets = "".join(ssh.target_yaml(name, roots[name], max_runs[name]) for name in ssh.names)
    targets = targets.replace("    max_runs:", f"    python: {python}\n    max_runs:")
    return (
        f"version: 1\nproject: {PROJECT}\ntargets:\n{targets}"
        f"policies:\n  poll_interval: {poll_interval:g}\n  connect_timeout: 30\n  command_timeout: 600\n"
        "  backoff: {base_seconds: 0, factor: 1, max_seconds: 0}\n"
    )


def start_time_of(pid: int) -> str:
    """Field 22 of ``/proc/<pid>/stat``, read as the wrapper and the probe read it."""
    data = Path(f"/proc/{pid}/stat").read_bytes()
    return data[data.rfind(b")") + 2 :].split()[19].decode()


@dataclass
class Fleet:
    """One benchmark world: the project, its targets' servers, and the processes it started."""

    scratch: Path
    hosts: int
    split: Split
    server_procs: int = 1
    python: str = "python3"
    network: Network | None = None
    """A delaying relay in front of every SSH server (``benchmarks.relay``)."""
    poll_interval: float = 3600
    project: Path = field(init=False)
    ssh: SshFleet = field(init=False)
    roots: dict[str, str] = field(default_factory=dict)
    sleepers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    running: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    """``exp_id -> (target, pid, run_dir)`` of the live runs (what a naive poller polls)."""
    names: list[str] = field(default_factory=list)
    added: int = 0
    _dead: tuple[int, str] = (0, "")

    def build(self) -> Fleet:
        """Servers, project and config; no experiment yet (``add`` commits them in batches)."""
        self.names = [f"t{i}" for i in range(self.hosts)]
        self.ssh = self.servers().start()
        for name in self.names:
            self.roots[name] = str(self.ssh.hosts[name].home / "root")
        self.project = self.scratch / "project"
        (self.project / "config").mkdir(parents=True)
        (self.project / "dispatch").mkdir()
        (self.project / "config" / "reconciler.yaml").write_text(
            config_yaml(self.ssh, self.roots, self.python, self._live_per_target(self.names), self.poll_interval)
        )
        (self.project / "job.sh").write_text(JOB)
        (self.project / ".gitignore").write_text(".reconciler/\n")
        git(self.project, "init", "-q", "-b", "main")
        finished = subprocess.Popen(["true"])
        self._dead = (finished.pid, start_time_of(finished.pid))
        finished.wait()
        return self

    def servers(self) -> SshFleet:
        """The targets' SSH servers, not started yet (a subclass may serve them otherwise:
        ``benchmarks.bareloop`` starts a real sshd per target)."""
        return SshFleet(self.scratch, self.names, procs=self.server_procs, network=self.network)

    def batches(self, size: int) -> list[int]:
        """Cumulative experiment counts, one per desired-state commit (``size`` 0: one commit)."""
        n = self.split.total
        if size <= 0 or size >= n:
            return [n]
        return [*range(size, n, size), n]

    def add(self, upto: int) -> None:
        """Commit the first ``upto`` experiments (in phase order: done, running, pending) and
        pre-create the run dirs of those not yet added."""
        d, r = self.split.done, self.split.running
        placed: dict[tuple[str, str], int] = {}
        for k in range(min(upto, d + r)):
            key = ("fin" if k < d else "live", self.names[k % len(self.names)])
            seed = placed.get(key, 0)
            placed[key] = seed + 1
            if k >= self.added:
                exp_id = f"{key[0]}_{key[1]}_s{seed}"
                self._run_dir(k, exp_id, seed if k < d else None)
        dispatch = dispatch_yaml(placed, max(0, upto - d - r), self.names)
        (self.project / "dispatch" / "experiments.yaml").write_text(dispatch)
        self.added = upto
        git(self.project, "add", "-A")
        git(self.project, "commit", "-qm", f"desired state: {upto} experiments")

    def _live_per_target(self, names: list[str]) -> dict[str, int]:
        """Room on each target for exactly its live runs: the pending ones wait for a slot."""
        room = dict.fromkeys(names, 0)
        for k in range(self.split.done, self.split.done + self.split.running):
            room[names[k % len(names)]] += 1
        return room

    def _run_dir(self, k: int, exp_id: str, done_seed: int | None) -> None:
        target = self.names[k % len(self.names)]
        rdir = run_dir(self.roots[target], exp_id, 1)
        if done_seed is not None:
            _write_run_dir(Path(rdir), exp_id, *self._dead, done_seed)
            return
        proc = subprocess.Popen(
            ["sleep", "100000"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.sleepers.append(proc)
        self.running[exp_id] = (target, proc.pid, rdir)
        _write_run_dir(Path(rdir), exp_id, proc.pid, start_time_of(proc.pid), None)

    def close(self) -> None:
        """Kill every process this fleet started (by pid), then stop the servers."""
        for proc in self.sleepers:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.sleepers:
            proc.wait()
        self.sleepers.clear()
        kill_launched(self.roots.values())
        self.ssh.stop()


def _write_run_dir(path: Path, exp_id: str, pid: int, start: str, done_seed: int | None) -> None:
    (path / "launch.lock").mkdir(parents=True)
    (path / "token").write_text(launch_token(PROJECT, exp_id, 1) + "\n")
    (path / "pid").write_text(f"{pid}\n")
    (path / "start_time").write_text(start + "\n")
    (path / "host").write_text(os.uname().nodename + "\n")
    (path / "heartbeat").write_text("0\n")
    (path / "stdout.log").write_text(f"epoch 1/10 {exp_id}\n")
    result = path / "experiments" / "results" / f"{exp_id}.csv"
    (path / "result_path").write_text(f"{result}\n")
    if done_seed is not None:
        result.parent.mkdir(parents=True)
        result.write_text(
            f"{CSV_HEADER}\n{exp_id},m,d,main,accuracy,{done_seed},0.9,{os.uname().nodename},,2026-11-26T00:00:00Z\n"
        )
        (path / "exit_code").write_text("0\n")


def kill_launched(roots: Iterable[str]) -> int:
    """Kill the process group of every run the reconciler launched under these roots (the
    wrappers are session leaders, so pid = pgid); returns how many were signalled."""
    killed = 0
    for root in roots:
        for pid_file in Path(root).glob("runs/*/*/pid"):
            if (pid_file.parent / "wrapper.sh").exists():
                with contextlib.suppress(ValueError, OSError):
                    os.killpg(int(pid_file.read_text().strip()), signal.SIGKILL)
                    killed += 1
    return killed
