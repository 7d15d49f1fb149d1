"""Fault-injection scenarios over a small real project (issue 9, part 2).

A scenario is a seeded list of steps over a fresh project (two ``local`` targets with distinct
roots, 2-3 experiments of short jobs). Every pass is a real ``reconcile --once`` subprocess. The
faults:

``crash``       ``RECONCILER_CRASH_AT=<point>[:n]`` (every point of ``reconciler.crashpoints.POINTS``)
``kill``        SIGKILL of the pass's process group: at a seeded fraction of a typical pass, the
                moment a status write has its temp file (``write``), or once a run started (``launch``)
``drop``        one target command of the pass "loses its connection" (exit 255, like ssh), either
                before the command ran or after it ran with its output lost
``slow``        one target answers slowly (under, or over, the command timeout)
``down``        one target refuses every command for k passes (k <= 2: no on-hold escalation)
``commit``      a person commits to the dispatch YAML while a pass runs (priority, a seed, an experiment,
                a command)
``disk_full``   ``RECONCILER_FAIL_WRITE``: the status write (state.json or lab.log) fails with ENOSPC
``corrupt``     state.json is truncated, garbled or deleted between passes (or the parse a pass
                kept, ``.reconciler/cache/``, is truncated)
``concurrent``  a second pass starts while the first holds the lock: it must exit 75

A seed-stable share of the scenarios runs on PBS targets through the project's PBS shim, with the
batch faults and invariants added (``tests.chaos.batch``; ``CHAOS_BATCH`` sets the share); other
shares run on targets with fake GPUs (``CHAOS_GPU``: local targets, ``tests.chaos.gpus``) and on
real OpenSSH targets with fake GPUs (``CHAOS_SSH``: ``tests.chaos.targets``).

Target faults go through a fake ``sh`` first on ``PATH`` (``LocalTransport`` runs ``sh -c``): it
recognises a target by its root in the script, so no hook in the backends is needed.

After every pass the issue-14 invariants are checked (``Run.after_pass``; ``tests.chaos.invariants``
and ``tests.chaos.gpus``): (a) GPU exclusivity from the live processes, (b) provenance of done
entries, (c) no untracked file, (d) no commit without a transition. After the steps, normal passes
run (bounded) until every experiment is final; then the invariants of design section 4 are checked
(``check``). A violation carries the seed and the scenario so that
``python -m tests.chaos.run --seed S --only I`` replays it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler.crashpoints import CRASH_EXIT_CODE
from reconciler.gitstore import ProjectRepo
from reconciler.gitstore.packing import wait_for_repack
from tests.chaos import batch, gpus, invariants, targets
from tests.chaos.scenarios import (
    COMMAND_TIMEOUT,
    DEFAULT_SEED,
    GPU_SHARE_ENV,
    SSH_SHARE_ENV,
    Scenario,
    Step,
)

TYPICAL_PASS = {"local": 1.2, "ssh": 2.5}
"""Seconds of a typical pass: a ``kill`` strikes at a seeded fraction of it."""
VRAM_FACTOR = 1.2
RECHECK_SECONDS = 0.3
"""Invariant (a) holds a finding only when it is still there this much later: a run being killed
(cancel, restart) may outlive the pass that killed it by a moment."""
INVARIANTS = (
    "a:gpu",
    "b:provenance",
    "c:files",
    "d:commits",
    "1:exactly-once",
    "2:idle-pass",
    "3:nothing-lost",
    "pass",
    "batch",
    "harness",
)
ALLOWED_EXIT = {0, 1, 2, 75, CRASH_EXIT_CODE}
RECONCILER_EMAIL = "reconciler@localhost"
OWNED_PREFIXES = ("dispatch/state.json", "dispatch/archive/", "progress/", "experiments/results/", "experiments/logs/")
"""What a reconciler commit may touch (status, events, results, experiment notes)."""
PASS_TIMEOUT = 120
SETTLE_SECONDS = 90.0
PERSON = ["-c", "user.name=person", "-c", "user.email=person@localhost"]
PYCACHE = Path(tempfile.gettempdir()) / f"reconciler-chaos-pycache-{os.getuid()}"
"""Bytecode of the passes' interpreters (stale entries are recompiled: Python checks the sources)."""
ROOTS = {"ta": "runs-a", "tb": "runs-b", "pa": "runs-pa", "pb": "runs-pb"}

JOB = textwrap.dedent(
    """
    import argparse, os, socket, time
    p = argparse.ArgumentParser()
    p.add_argument("--exp"); p.add_argument("--seed", type=int, default=0); p.add_argument("--out")
    p.add_argument("--sleep", type=float, default=0.0); p.add_argument("--dry-run", action="store_true")
    a, _ = p.parse_known_args()
    if a.dry_run:
        raise SystemExit(0)
    with open(os.environ["LAUNCH_LOG"], "a") as f:
        f.write(f"{a.exp} {os.environ.get('RECONCILER_ATTEMPT', '?')} {os.getpid()}\\n")
    time.sleep(a.sleep)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    # The pid and the time make every run's result unique (invariant b compares them byte for byte).
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "").replace(",", " ")
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}Z"
    with open(a.out + ".tmp", "w") as f:
        f.write("exp_id,method,dataset,group,metric,seed,value,host,gpu,finished_at\\n")
        f.write(f"{a.exp},m,d,main,accuracy,{a.seed},0.9,{socket.gethostname()}-{os.getpid()},{gpu},{when}\\n")
    os.replace(a.out + ".tmp", a.out)
    """
)

# The fake ``sh``: only a top-level call (the transport's ``sh -c``) can be faulted; nested shells
# (the wrapper, the job) get the real one.
FAKE_SH = textwrap.dedent(
    """\
    import fcntl, os, subprocess, sys, time
    REAL = "/bin/sh"
    args = sys.argv[1:]
    if os.environ.get("CHAOS_SH_INNER"):
        os.execv(REAL, [REAL, *args])
    os.environ["CHAOS_SH_INNER"] = "1"
    script = args[1] if len(args) > 1 and args[0] == "-c" else ""
    if any(r and r in script for r in os.environ.get("CHAOS_DOWN_ROOTS", "").split(os.pathsep)):
        print("ssh: connect to host target port 22: Connection refused", file=sys.stderr)
        sys.exit(255)
    slow = os.environ.get("CHAOS_SLOW_ROOT")
    if slow and slow in script:
        time.sleep(float(os.environ.get("CHAOS_SLOW_SECONDS", "1")))
    drop = os.environ.get("CHAOS_DROP")
    if drop:
        mode, _, nth = drop.partition(":")
        with open(os.environ["CHAOS_COUNTER"], "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            count = len(f.read()) + 1
            f.write(".")
        if count == int(nth):
            if mode == "after":
                data = sys.stdin.buffer.read()
                subprocess.run([REAL, *args], input=data, capture_output=True)
            print("client_loop: send disconnect: Broken pipe", file=sys.stderr)
            sys.exit(255)
    os.execv(REAL, [REAL, *args])
    """
)

CONFIG = textwrap.dedent(
    f"""\
    version: 1
    project: chaostest
    targets:
      ta:
        kind: local
        root: .reconciler/runs-a
        max_runs: 8
      tb:
        kind: local
        root: .reconciler/runs-b
        max_runs: 8
    policies:
      poll_interval: 60
      command_timeout: {COMMAND_TIMEOUT}
      backoff: {{base_seconds: 0, factor: 1, max_seconds: 0}}
      archive_after_hours: 0
    git:
      pack_loose_mib: 0.01  # a background repack after every status commit, killed or not
    """
)


@dataclass
class Outcome:
    scenario: Scenario
    violations: list[str] = field(default_factory=list)
    passes: int = 0
    seconds: float = 0.0
    exit_codes: Counter[int] = field(default_factory=Counter)
    inconclusive: int = 0
    """Concurrent-pass steps where the first pass ended before the second did (nothing checked)."""
    missed: int = 0
    """``qdel`` steps that found no live job to delete (nothing injected)."""
    kill_missed: int = 0
    """``kill`` steps whose pass had ended before the kill (nothing injected)."""
    checks: Counter[str] = field(default_factory=Counter)
    """Invariant checks run, by invariant."""
    by_invariant: Counter[str] = field(default_factory=Counter)
    """Violations, by invariant."""
    skipped: str = ""
    """Why the scenario was not played (an SSH scenario without sshd or root)."""

    def report(self) -> str:
        lines = [f"VIOLATION in scenario {self.scenario.describe()}"]
        lines += [f"  - {v}" for v in self.violations]
        s = self.scenario
        env = batch.replay_prefix() + "".join(
            f"{name}={os.environ[name]} " for name in (GPU_SHARE_ENV, SSH_SHARE_ENV) if name in os.environ
        )
        if s.name:
            lines.append(f"  replay: .venv/bin/python -m tests.chaos.run --named {s.name}")
        else:
            lines.append(f"  replay: {env}CHAOS_SEED={s.seed} .venv/bin/python -m tests.chaos.run --only {s.index}")
        return "\n".join(lines)


def _dispatch(experiments: list[dict[str, Any]], priorities: dict[str, int] | None = None) -> str:
    doc: dict[str, Any] = {
        "version": 1,
        "defaults": {"phase": "pilot", "expected_duration_hours": 0.01, "max_retries": 2},
        "experiments": [],
    }
    for e in experiments:
        item: dict[str, Any] = {
            "id": e["id"],
            "command": f"python3 job.py --exp {{exp_id}} --seed {{seed}} --out {{result_file}} --sleep {e['sleep']}",
            "seeds": e["seeds"],
            "targets": e["targets"],
            "group": "main",
            "method": "m",
            "dataset": "d",
        }
        if priorities and e["id"] in priorities:
            item["priority"] = priorities[e["id"]]
        if "vram" in e:
            item["vram_gb"] = e["vram"]
            item["env"] = {"CHAOS_VRAM_MB": str(int(e["vram"]) * 1024)}
        doc["experiments"].append(item)
    return yaml.safe_dump(doc, sort_keys=False)


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


class Run:
    """One scenario being played: the project, its environment, and what was seen."""

    def __init__(self, scenario: Scenario, base: Path) -> None:
        self.scenario = scenario
        self.base = base
        self.project = base / "project"
        self.experiments = [dict(e) for e in scenario.experiments]
        self.priorities: dict[str, int] = {}
        self.outcome = Outcome(scenario)
        self.launch_log = base / "launches.log"
        self.bin = base / "bin"
        self.counter = base / "sh-counter"
        self.tag = f"chaos-{scenario.seed}-{scenario.index}-{base.name}"
        """In every job's environment (``CHAOS_TAG``): the scenario's live jobs in ``/proc``."""
        self.shim = batch.Shim(base / "pbs") if scenario.batch else None
        if self.shim:
            self.shim.person_env = self.env()  # the jobs a person's qrls starts get the scenario's
        self.qdeleted: set[str] = set()
        """Experiments whose live job a person deleted on the cluster (they may end cancelled)."""
        self.fleet: targets.SshFleet | None = None
        self.tables: dict[str, tuple[gpus.GpuHost, ...]] = {}
        self.pass_head = ""
        self.pass_state_dirty = False
        self.pass_write_fails = False
        self.seen: set[str] = set()

    # -- setup -----------------------------------------------------------------------------------

    def setup(self) -> None:
        p = self.project
        (p / "config").mkdir(parents=True)
        (p / "dispatch").mkdir()
        config = CONFIG
        if self.scenario.gpu:
            config = self._gpu_config()
        elif self.shim:
            config = batch.config(COMMAND_TIMEOUT)
        (p / "config" / "reconciler.yaml").write_text(config)
        (p / "dispatch" / "experiments.yaml").write_text(_dispatch(self.experiments))
        (p / "job.py").write_text(JOB)
        (p / ".gitignore").write_text(".reconciler/\n")
        git(p, "init", "-q", "-b", "main")
        git(p, *PERSON, "add", "-A")
        git(p, *PERSON, "commit", "-qm", "desired state")
        self.bin.mkdir()
        sh = self.bin / "sh"
        sh.write_text(f"#!{sys.executable} -S\n" + FAKE_SH)
        sh.chmod(0o755)
        for step in self.scenario.steps:
            if step.kind == "sched":
                self._sched(step.arg, armed=True)

    def _gpu_config(self) -> str:
        """Two targets with fake GPUs: ``local`` ones, or ``ssh`` ones on a fresh sshd pair."""
        s = self.scenario
        names = targets.SSH_TARGETS if s.ssh else targets.GPU_TARGETS
        self.tables = targets.gpu_tables(list(s.foreign), names)
        where = self.base
        if s.ssh:
            self.fleet = targets.SshFleet()
            where = self.fleet.home_dir
            self.launch_log = where / "launches.log"
            self.launch_log.touch()
            self.fleet.own(self.launch_log)
        gpu_bin, gpu_dir = where / "gpubin", where / "gpus"
        gpus.install(gpu_bin, gpu_dir, self.tables)
        blocks = []
        for name in names:
            variables = {
                "CHAOS_GPU_DIR": str(gpu_dir),
                "CHAOS_GPU_HOST": name,
                "CHAOS_GPU_WARMUP": f"{s.warmup:g}",
                "CHAOS_TAG": self.tag,
            }
            if s.ssh:
                variables["LAUNCH_LOG"] = str(self.launch_log)
            assert self.fleet is not None or not s.ssh
            blocks.append(
                targets.target_block(
                    name,
                    root=f"{self.fleet.home_dir.name}/{name}" if self.fleet else f".reconciler/{ROOTS[name]}",
                    bin_dir=gpu_bin,
                    variables=variables,
                    max_runs_per_gpu=s.max_runs_per_gpu,
                    vram_factor=VRAM_FACTOR,
                    ssh=self.fleet.hosts[name] if self.fleet else None,
                )
            )
        timeout = COMMAND_TIMEOUT * 3 if s.ssh else COMMAND_TIMEOUT
        return (
            "version: 1\nproject: chaostest\ntargets:\n"
            + "".join(blocks)
            + f"policies:\n  poll_interval: 60\n  command_timeout: {timeout}\n  connect_timeout: 5\n"
            + "  backoff: {base_seconds: 0, factor: 1, max_seconds: 0}\n  archive_after_hours: 0\n"
            + "git:\n  pack_loose_mib: 0.01\n"
        )

    def root(self, target: str) -> str:
        if self.fleet is not None and target in self.fleet.hosts:
            return str(self.fleet.root(target))
        return str((self.project / ".reconciler" / ROOTS[target]).resolve())

    def roots(self) -> dict[str, Path]:
        names = [t for t in (*ROOTS, *targets.SSH_TARGETS) if t in ROOTS or self.fleet is not None]
        return {t: Path(self.root(t)) for t in names}

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILER_", "CHAOS_"))}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        if self.shim:
            env["PATH"] = f"{batch.SHIM}{os.pathsep}{env['PATH']}"
            env.update(self.shim.env())
        env["LAUNCH_LOG"] = str(self.launch_log)
        env["CHAOS_COUNTER"] = str(self.counter)
        env["CHAOS_TAG"] = self.tag
        # Every pass is a new interpreter: keep its compiled modules in one cache outside the tree
        # (a machine that sets PYTHONDONTWRITEBYTECODE otherwise compiles ~100 modules per pass).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
        env.update(extra or {})
        return env

    # -- passes ----------------------------------------------------------------------------------

    def _argv(self) -> list[str]:
        return [sys.executable, "-m", "reconciler", "--once", "-C", str(self.project)]

    def start(self, extra: dict[str, str] | None = None, *, session: bool = False) -> subprocess.Popen[str]:
        """Start a pass (``session``: in its own process group, for a ``kill``)."""
        self.counter.unlink(missing_ok=True)
        self.pass_write_fails = "RECONCILER_FAIL_WRITE" in (extra or {})
        self.pass_head = invariants.head(self.project)
        committed = subprocess.run(
            ["git", "show", f"{self.pass_head}:dispatch/state.json"], cwd=self.project, capture_output=True
        ).stdout
        try:
            self.pass_state_dirty = (self.project / "dispatch" / "state.json").read_bytes().strip() != committed.strip()
        except OSError:
            self.pass_state_dirty = True
        return subprocess.Popen(
            self._argv(),
            cwd=self.project,
            env=self.env(extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=session,
        )

    def finish(self, proc: subprocess.Popen[str], what: str, allowed: set[int] = ALLOWED_EXIT) -> tuple[int, str]:
        try:
            out, err = proc.communicate(timeout=PASS_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            self.violation(f"{what}: pass did not end within {PASS_TIMEOUT} s")
        rc = proc.returncode
        self.outcome.passes += 1
        self.outcome.exit_codes[rc] += 1
        if "Traceback" in err:
            self.violation(f"{what}: traceback on stderr (rc {rc}):\n{textwrap.indent(err.strip(), '      ')}")
        if rc not in allowed:
            self.violation(f"{what}: exit code {rc} not in {sorted(allowed)}; stderr: {err.strip()[-800:]}")
        self.after_pass(what, rc)
        return rc, out + err

    def after_pass(self, what: str, rc: int) -> None:
        """The invariants that hold after every pass, whatever it went through."""
        p = self.project
        if self.scenario.gpu:  # (a) from the live truth, not from the state file
            self.outcome.checks["a:gpu"] += 1
            found = self._gpu_findings()
            if found:
                time.sleep(RECHECK_SECONDS)
                again = self._gpu_findings()
                for key in sorted(set(found) & set(again)):
                    self.violation(f"invariant a ({what}): {again[key]}", "a:gpu")
        self.outcome.checks["b:provenance"] += 1
        for text in invariants.provenance_violations(p, self.state(), self.roots()):
            self.violation(text, "b:provenance")
        # A pass that ended by itself leaves no stray file; a killed or crashed one, or one whose
        # status write failed (its collected results wait for the next pass), may: the next must not.
        if rc in (0, 1, 2, 75) and not self.pass_write_fails:
            self.outcome.checks["c:files"] += 1
            for path in invariants.untracked_files(p):
                self.violation(f"invariant c ({what}): {path} is untracked and not ignored", "c:files")
        after = invariants.head(p)
        if not self.pass_state_dirty:  # a pass that found uncommitted state may commit it as it is
            self.outcome.checks["d:commits"] += 1
            noise = invariants.noise_commits(p, self.pass_head, after, RECONCILER_EMAIL)
            if noise:
                diff = invariants.projection_diff(p, self.pass_head, after)
                self.violation(f"invariant d ({what}): commit(s) without a transition: {noise}; {diff}", "d:commits")

    def _gpu_findings(self) -> dict[tuple[str, int], str]:
        runs = gpus.live_runs(self.tag)
        return gpus.gpu_violations(runs, self.tables, self.scenario.max_runs_per_gpu, VRAM_FACTOR)

    def run_pass(self, what: str = "pass", extra: dict[str, str] | None = None) -> tuple[int, str]:
        return self.finish(self.start(extra), what)

    def run_pass_qstat_down(self, what: str) -> None:
        """A pass while the server refuses ``qstat``: it must mark nothing failed."""
        before = batch.failed_attempts(self.state())
        self.run_pass(what)
        new = batch.failed_attempts(self.state()) - before
        if new:
            self.violation(f"batch invariant: marked failed while qstat was failing ({what}): {sorted(new)}")

    def violation(self, text: str, invariant: str = "pass") -> None:
        """Record a violation once per scenario (a check after every pass sees a lasting one again)."""
        key = text.split(": ", 1)[1] if text.startswith("invariant ") and ": " in text else text
        if key in self.seen:
            return
        self.seen.add(key)
        self.outcome.violations.append(text)
        self.outcome.by_invariant[invariant] += 1

    # -- faults ----------------------------------------------------------------------------------

    def step(self, step: Step) -> None:
        kind, arg = step.kind, step.arg
        if kind == "pass":
            self.run_pass()
        elif kind == "crash":  # armed passes until one dies there (some points need work to do)
            for i in range(4):
                if self.run_pass(f"{step} try {i + 1}", {"RECONCILER_CRASH_AT": arg})[0] == CRASH_EXIT_CODE:
                    break
        elif kind == "kill":
            self._kill(step)
        elif kind == "drop":
            self.run_pass(str(step), {"CHAOS_DROP": arg})
        elif kind == "slow":
            target, seconds = arg.split(":")
            self.run_pass(str(step), {"CHAOS_SLOW_ROOT": self.root(target), "CHAOS_SLOW_SECONDS": seconds})
        elif kind == "down" and self.fleet is not None:
            target, k = arg.split(":")
            self.fleet.down(target)
            try:
                for i in range(int(k)):
                    self.run_pass(f"{step} pass {i + 1}")
            finally:
                self.fleet.up(target)
        elif kind == "down":
            target, k = arg.split(":")
            for i in range(int(k)):
                self.run_pass(f"{step} pass {i + 1}", {"CHAOS_DOWN_ROOTS": self.root(target)})
        elif kind == "commit":
            self._commit_during_pass(step)
        elif kind == "disk_full":
            self.run_pass(str(step), {"RECONCILER_FAIL_WRITE": arg})  # a clean error, or nothing to write
        elif kind == "corrupt":
            self._corrupt(arg)
        elif kind == "concurrent":
            self._concurrent(step)
        elif kind == "sched":
            self._sched(arg)
        elif kind == "qdel":
            self._qdel(step)
        elif kind == "qstat_down":
            assert self.shim is not None
            self.shim.set_control(qstat_fail=True)
            for i in range(int(arg)):
                self.run_pass_qstat_down(f"{step} pass {i + 1}")
            self.shim.set_control(qstat_fail=None)
        else:
            raise ValueError(f"unknown step {step}")
        # After every fault, one normal pass: bounded consecutive misses per target.
        if kind != "pass":
            self.run_pass(f"pass after {step}")

    def _kill(self, step: Step) -> None:
        """SIGKILL the pass's whole process group at a seeded fraction of a typical pass, or
        (``write``) the moment one of its status writes has a temp file in the project, or
        (``launch``) the moment it has started a run (a new ``pid`` file in a run dir)."""
        before = self._pid_files()
        proc = self.start(session=True)
        if step.arg == "launch":
            while proc.poll() is None and self._pid_files() <= before:
                time.sleep(0.002)
        elif step.arg == "write":
            dirs = [self.project / d for d in ("dispatch", "progress", "experiments/logs", "experiments/results")]
            while proc.poll() is None and not any(_temp_files(d) for d in dirs):
                time.sleep(0.001)
        else:
            delay = float(step.arg) * TYPICAL_PASS["ssh" if self.fleet else "local"]
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=delay)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        else:
            self.outcome.kill_missed += 1
        self.finish(proc, str(step), {*ALLOWED_EXIT, -signal.SIGKILL})

    def _pid_files(self) -> set[str]:
        return {str(p) for root in self.roots().values() for p in root.glob("runs/*/*/pid")}

    def cleanup(self) -> None:
        """Kill what the scenario left running (its jobs, by the pids /proc shows with its tag)."""
        for run in gpus.live_runs(self.tag):
            with contextlib.suppress(OSError):
                os.killpg(os.getpgid(run.pid), signal.SIGKILL)
        if self.fleet is not None:
            self.fleet.close()

    def _commit_during_pass(self, step: Step) -> None:
        what, delay = step.arg.split(":")
        proc = self.start()
        time.sleep(float(delay))
        if what == "priority":
            first = self.experiments[0]["id"]
            self.priorities[first] = self.priorities.get(first, 100) + 10
        elif what == "seed":
            exp = self.experiments[-1]
            exp["seeds"] = [*exp["seeds"], len(exp["seeds"])]
        elif what == "command":  # an edit of a command while its runs may live (on_change: keep)
            exp = self.experiments[0]
            exp["sleep"] = round(float(exp["sleep"]) + 0.1, 1)
        else:
            n = len(self.experiments)
            names = targets.SSH_TARGETS if self.fleet else ["ta", "tb"]
            where = batch.NEW_EXPERIMENT_TARGETS if self.shim else list(names)
            new: dict[str, Any] = {"id": f"e{n}", "seeds": [0], "sleep": 0.1, "targets": where}
            if self.scenario.gpu:
                new["vram"] = 30
            self.experiments.append(new)
        (self.project / "dispatch" / "experiments.yaml").write_text(_dispatch(self.experiments, self.priorities))
        for attempt in range(50):  # the pass may hold the index lock for a moment
            done = subprocess.run(
                ["git", *PERSON, "commit", "-qm", f"person: {what}", "--", "dispatch/experiments.yaml"],
                cwd=self.project,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if done.returncode == 0:
                break
            if attempt == 49:
                self.violation(f"{step}: the person could not commit: {done.stderr.strip()}")
            time.sleep(0.1)
        self.finish(proc, str(step))

    def _corrupt(self, how: str) -> None:
        path = self.project / "dispatch" / "state.json"
        if how == "cache":  # what the last pass kept parsed (``reconciler.loadcache``): a miss, never a lie
            for kept in (self.project / ".reconciler" / "cache").glob("*.pickle"):
                kept.write_bytes(kept.read_bytes()[: kept.stat().st_size // 2])
            return
        if how == "delete":
            path.unlink(missing_ok=True)
        elif not path.exists():
            return
        elif how == "truncate":
            text = path.read_text()
            path.write_text(text[: len(text) // 2])
        elif how == "garbage":
            path.write_bytes(b"\x00\xff{not json")
        else:
            path.write_text("")

    def _concurrent(self, step: Step) -> None:
        # Every target command of the first pass takes 2 s (under the timeout): it holds the lock.
        slow = {"CHAOS_SLOW_ROOT": str(self.project / ".reconciler"), "CHAOS_SLOW_SECONDS": "2.0"}
        first = self.start(slow)
        lock = self.project / ".reconciler" / "lock"
        held = False
        deadline = time.monotonic() + 20
        while not held and time.monotonic() < deadline and first.poll() is None:
            with contextlib.suppress(OSError):
                held = f'"pid": {first.pid},' in lock.read_text()
            time.sleep(0.02)
        second = subprocess.run(self._argv(), cwd=self.project, env=self.env(), capture_output=True, text=True)
        overlapped = held and first.poll() is None  # the first still ran when the second ended
        self.outcome.passes += 1
        self.outcome.exit_codes[second.returncode] += 1
        self.finish(first, f"{step} (first)")
        if not overlapped:
            self.outcome.inconclusive += 1
        elif second.returncode != 75:
            self.violation(f"{step}: the second pass exited {second.returncode}, not 75: {second.stderr.strip()}")
        if "Traceback" in second.stderr:
            self.violation(f"{step}: traceback in the second pass:\n{second.stderr}")
        if second.returncode == 75 and "lock" not in second.stderr.lower():
            self.violation(f"{step}: exit 75 without a clear message: {second.stderr.strip()!r}")

    def _sched(self, arg: str, *, armed: bool = False) -> None:
        """A scheduler fault (``control.json``). ``hold``, ``node_fail`` and ``preempt`` strike
        attempt 1 of an experiment, so they are armed at setup (``armed``: most jobs are submitted
        in the first pass); a queue delay holds from its step on."""
        assert self.shim is not None
        what, _, value = arg.partition(":")
        if what == "queue_delay":
            if not armed:
                self.shim.set_control(queue_delay=float(value))
        elif armed:
            self.shim.set_control(**{what: [batch.pattern(value)]})
            if what == "preempt":
                self.shim.set_control(preempt_after=0.3)

    def _qdel(self, step: Step) -> None:
        """A person deletes a live job while a pass runs (up to 3 passes until one is live)."""
        assert self.shim is not None
        for i in range(3):
            proc = self.start()
            deleted = ""
            while proc.poll() is None and not deleted:
                live = self.shim.live()
                if live:
                    job = live[int(step.arg) % len(live)]
                    if self.shim.person("qdel", job["id"]).returncode == 0:
                        deleted = job["name"]
                time.sleep(0.05)
            self.finish(proc, f"{step} try {i + 1}")
            key = batch.job_key(deleted)
            if key:
                self.qdeleted.add(key[0])
                return
        self.outcome.missed += 1

    # -- settle and check ------------------------------------------------------------------------

    def spec_ids(self) -> set[str]:
        return {f"{e['id']}_s{s}" for e in self.experiments for s in e["seeds"]}

    def state(self) -> dict[str, dict[str, Any]]:
        """Every recorded entry: ``dispatch/state.json``'s and its archived phases' (``archive_after_hours:
        0`` archives the phase once all its experiments ended; a seed a person adds brings it back)."""
        path = self.project / "dispatch" / "state.json"

        def read(rel: str) -> str | None:
            with contextlib.suppress(OSError):
                return (self.project / rel).read_text()
            return None

        try:
            entries, _phases = invariants.recorded(path.read_text(), read)
            return {e["id"]: e for e in entries}
        except (OSError, KeyError, TypeError):
            return {}

    def settled(self) -> bool:
        s = self.state()
        return set(s) >= self.spec_ids() and all(s[i]["status"] in ("done", "failed", "cancelled") for i in s)

    def settle(self) -> bool:
        end = time.monotonic() + SETTLE_SECONDS
        passes = 0
        while time.monotonic() < end:
            # A person releases what the scheduler holds once the escalation shows (or soon).
            if self.shim and (passes >= 2 or any(e["status"] == "on_hold" for e in self.state().values())):
                self.shim.release_held()
            self.run_pass("settle")
            passes += 1
            if self.settled():
                return True
            time.sleep(0.2)
        return False

    def check(self) -> None:
        if not self.settle():
            statuses = {k: v["status"] for k, v in sorted(self.state().items())}
            self.violation(f"not settled after {SETTLE_SECONDS:.0f} s: {statuses}, wanted {sorted(self.spec_ids())}")
            return
        p = self.project
        head = git(p, "rev-parse", "HEAD")
        rc, text = self.run_pass("idle pass")
        if git(p, "rev-parse", "HEAD") != head:
            self.violation(f"invariant 2: a pass over a settled world committed: {text.strip()[-400:]}", "2:idle-pass")
        if rc != 0:
            self.violation(f"idle pass exited {rc}: {text.strip()[-400:]}")
        state = self.state()
        # Invariant 3: nothing lost.
        missing = self.spec_ids() - set(state)
        if missing:
            self.violation(f"invariant 3: no state entry for {sorted(missing)}", "3:nothing-lost")
        committed = git(p, "show", "HEAD:dispatch/state.json")
        if committed != (p / "dispatch" / "state.json").read_text().strip():
            self.violation("invariant 3: the working tree's state.json differs from HEAD's", "3:nothing-lost")
        if git(p, "status", "--porcelain", "--", "dispatch/archive"):
            self.violation("invariant 3: the working tree's archive differs from HEAD's", "3:nothing-lost")
        # ... and the history whole, with the background repacks every commit started (killed
        # controllers and all) finished.
        with ProjectRepo(p) as repo:
            if not wait_for_repack(repo, timeout=60):
                self.violation("a background repack still ran 60 s after the last pass", "3:nothing-lost")
        fsck = subprocess.run(["git", "fsck", "--strict", "--no-progress"], cwd=p, capture_output=True, text=True)
        if fsck.returncode != 0:
            self.violation(f"invariant 3: git fsck: {fsck.stderr.strip()[-400:]}", "3:nothing-lost")
        for exp_id, entry in sorted(state.items()):
            if entry["status"] == "cancelled" and exp_id in self.qdeleted:
                continue  # a person deleted its job on the cluster
            if entry["status"] != "done":
                self.violation(f"{exp_id} ended {entry['status']} (no fault here should fail a job)")
                continue
            result = entry.get("result_file") or f"experiments/results/{exp_id}.csv"
            if not (p / result).exists():
                self.violation(f"invariant 3: {exp_id} is done but {result} is missing", "3:nothing-lost")
            elif subprocess.run(["git", "cat-file", "-e", f"HEAD:{result}"], cwd=p, capture_output=True).returncode:
                self.violation(f"invariant 3: {exp_id} is done but {result} is not committed", "3:nothing-lost")
        # Invariant 1: exactly-once launch per attempt.
        lines = self.launch_log.read_text().split("\n") if self.launch_log.exists() else []
        seen = Counter(tuple(line.split()[:2]) for line in lines if line.strip())
        for (exp_id, attempt), n in sorted(seen.items()):
            if n > 1:
                self.violation(f"invariant 1: {exp_id} attempt {attempt} started {n} times", "1:exactly-once")
            recorded = {str(a.get("n")) for a in state.get(exp_id, {}).get("attempts", [])}
            if attempt not in recorded:
                text = f"invariant 1: {exp_id} attempt {attempt} ran but is not recorded ({recorded})"
                self.violation(text, "1:exactly-once")
        for exp_id, entry in state.items():
            current = str(entry.get("attempt"))
            if entry["status"] == "done" and (exp_id, current) not in seen:
                self.violation(f"invariant 1: {exp_id} attempt {current} is done but never started", "1:exactly-once")
        if self.shim:
            for text in batch.final_violations(state, self.shim.jobs()):
                self.violation(text, "batch")
        # The reconciler's commits touch only its own paths.
        log = git(p, "log", f"--author={RECONCILER_EMAIL}", "--format=@%h", "--name-only")
        sha = ""
        for line in log.splitlines():
            if line.startswith("@"):
                sha = line[1:]
            elif line and not line.startswith(OWNED_PREFIXES):
                self.violation(f"reconciler commit {sha} touched {line}")


def _temp_files(directory: Path) -> list[str]:
    with contextlib.suppress(OSError):
        return [e.name for e in os.scandir(directory) if e.name.endswith(".tmp")]
    return []


def play(scenario: Scenario, base: Path) -> Outcome:
    started = time.monotonic()
    if scenario.ssh and (why := targets.ssh_available()):
        return Outcome(scenario, skipped=f"ssh scenario skipped: {why}")
    run = Run(scenario, base)
    try:
        run.setup()
        for step in scenario.steps:
            run.step(step)
        run.check()
    except Exception as exc:  # a harness failure is reported with the scenario
        run.violation(f"harness error: {type(exc).__name__}: {exc}", "harness")
    finally:
        run.cleanup()
    run.outcome.seconds = time.monotonic() - started
    return run.outcome


def seed_from_env() -> int:
    return int(os.environ.get("CHAOS_SEED", str(DEFAULT_SEED)))
