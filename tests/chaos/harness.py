"""Fault-injection scenarios over a small real project (issue 9, part 2).

A scenario is a seeded list of steps over a fresh project (two ``local`` targets with distinct
roots, 2-3 experiments of short jobs). Every pass is a real ``reconcile --once`` subprocess. The
faults:

``crash``       ``RECONCILER_CRASH_AT=<point>[:n]`` (every point of ``reconciler.crashpoints.POINTS``)
``drop``        one target command of the pass "loses its connection" (exit 255, like ssh), either
                before the command ran or after it ran with its output lost
``slow``        one target answers slowly (under, or over, the command timeout)
``down``        one target refuses every command for k passes (k <= 2: no on-hold escalation)
``commit``      a person commits to the dispatch YAML while a pass runs (priority, a seed, an experiment)
``disk_full``   ``RECONCILER_FAIL_WRITE``: the status write (state.json or lab.log) fails with ENOSPC
``corrupt``     state.json is truncated, garbled or deleted between passes
``concurrent``  a second pass starts while the first holds the lock: it must exit 75

A seed-stable share of the scenarios runs on PBS targets through the project's PBS shim, with the
batch faults and invariants added (``tests.chaos.batch``; ``CHAOS_BATCH`` sets the share).

Target faults go through a fake ``sh`` first on ``PATH`` (``LocalTransport`` runs ``sh -c``): it
recognises a target by its root in the script, so no hook in the backends is needed.

After the steps, normal passes run (bounded) until every experiment is final; then the invariants
of design section 4 are checked (``check``). A violation carries the seed and the scenario so that
``python -m tests.chaos.run --seed S --only I`` replays it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
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

from reconciler.crashpoints import CRASH_EXIT_CODE, POINTS
from tests.chaos import batch

DEFAULT_SEED = 20261126
LOCAL_FAULTS = ("crash", "drop", "slow", "down", "commit", "disk_full", "corrupt", "concurrent")
FAULTS = (*LOCAL_FAULTS, *batch.BATCH_FAULTS)
MULTI_HIT = ("after_run_dir", "after_launch", "after_collect", "after_kill")
"""Points a pass can reach more than once (one per action): ``<point>:2`` dies at the second."""
ALLOWED_EXIT = {0, 1, 2, 75, CRASH_EXIT_CODE}
RECONCILER_EMAIL = "reconciler@localhost"
OWNED_PREFIXES = ("dispatch/state.json", "progress/", "experiments/results/", "experiments/logs/")
"""What a reconciler commit may touch (status, events, results, experiment notes)."""
COMMAND_TIMEOUT = 3
PASS_TIMEOUT = 120
SETTLE_SECONDS = 90.0
PERSON = ["-c", "user.name=person", "-c", "user.email=person@localhost"]
TARGETS = ("ta", "tb")
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
    with open(a.out + ".tmp", "w") as f:
        f.write("exp_id,method,dataset,group,metric,seed,value,host,gpu,finished_at\\n")
        f.write(f"{a.exp},m,d,main,accuracy,{a.seed},0.9,{socket.gethostname()},,2026-11-26T00:00:00Z\\n")
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
    """
)


@dataclass
class Step:
    kind: str
    arg: str = ""

    def __str__(self) -> str:
        return f"{self.kind}({self.arg})" if self.arg else self.kind


@dataclass
class Scenario:
    seed: int
    index: int
    experiments: list[dict[str, Any]]
    steps: list[Step]
    batch: bool = False
    """PBS targets through the shim (``tests.chaos.batch``)."""

    def describe(self) -> str:
        exps = ", ".join(f"{e['id']}x{len(e['seeds'])}@{'/'.join(e['targets'])}" for e in self.experiments)
        kind = " pbs" if self.batch else ""
        return f"seed={self.seed} index={self.index}{kind} [{exps}] steps: " + " ".join(map(str, self.steps))


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

    def report(self) -> str:
        lines = [f"VIOLATION in scenario {self.scenario.describe()}"]
        lines += [f"  - {v}" for v in self.violations]
        s = self.scenario
        env = batch.replay_prefix()
        lines.append(f"  replay: {env}CHAOS_SEED={s.seed} .venv/bin/python -m tests.chaos.run --only {s.index}")
        return "\n".join(lines)


def generate(seed: int, index: int) -> Scenario:
    if batch.is_batch(seed, index):
        return generate_batch(seed, index)
    rng = random.Random(f"{seed}:{index}")
    experiments = []
    for i in range(rng.randint(2, 3)):
        experiments.append(
            {
                "id": f"e{i}",
                "seeds": list(range(rng.randint(1, 2))),
                "sleep": rng.choice([0.1, 0.5, 1.5]),
                "targets": rng.choice([["ta"], ["tb"], ["ta", "tb"]]),
            }
        )
    steps: list[Step] = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice((*LOCAL_FAULTS, "crash", "crash"))  # crashes weigh 3: every point, often
        if kind == "crash":
            point = rng.choice(POINTS)
            arg = point + (rng.choice(["", "", ":2"]) if point in MULTI_HIT else "")
        else:
            arg = _fault_arg(rng, kind, TARGETS)
        # A fault may come before the first pass or after a few normal ones.
        steps.extend(Step("pass") for _ in range(rng.choice([0, 0, 1, 2])))
        steps.append(Step(kind, arg))
    return Scenario(seed, index, experiments, steps)


def generate_batch(seed: int, index: int) -> Scenario:
    """A scenario on PBS (and local) targets, with the batch faults in the mix (own random stream)."""
    rng = random.Random(f"{seed}:{index}:pbs")
    experiments: list[dict[str, Any]] = []
    for i in range(rng.randint(2, 3)):
        experiments.append(
            {
                "id": f"e{i}",
                "seeds": list(range(rng.randint(1, 2))),
                "sleep": rng.choice([0.1, 0.5, 1.5, 3.0]),
                "targets": list(rng.choice(batch.EXPERIMENT_TARGETS)),
            }
        )
    exp_ids = [e["id"] for e in experiments]
    steps: list[Step] = []
    for _ in range(rng.randint(1, 3)):
        kind = batch.fault_kind(rng, LOCAL_FAULTS)
        if kind == "crash":
            arg = batch.crash_point(rng, POINTS, MULTI_HIT)
        elif kind in batch.BATCH_FAULTS:
            arg = batch.fault_arg(rng, kind, exp_ids)
        else:
            arg = _fault_arg(rng, kind, batch.BATCH_TARGETS)
        steps.extend(Step("pass") for _ in range(rng.choice([0, 0, 1, 2])))
        steps.append(Step(kind, arg))
    return Scenario(seed, index, experiments, steps, batch=True)


def _fault_arg(rng: random.Random, kind: str, targets: tuple[str, ...]) -> str:
    """The argument of a fault step of every scenario but a crash."""
    if kind == "drop":
        return f"{rng.choice(['before', 'after'])}:{rng.randint(1, 6)}"
    if kind == "slow":
        return f"{rng.choice(targets)}:{rng.choice([0.5, COMMAND_TIMEOUT + 1.0])}"
    if kind == "down":
        return f"{rng.choice(targets)}:{rng.randint(1, 2)}"
    if kind == "commit":
        return f"{rng.choice(['priority', 'seed', 'experiment'])}:{rng.choice([0.0, 0.3, 0.8])}"
    if kind == "disk_full":
        return rng.choice(["dispatch/state.json", "progress/lab.log"])
    if kind == "corrupt":
        return rng.choice(["truncate", "garbage", "delete", "empty"])
    return ""


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
        self.shim = batch.Shim(base / "pbs") if scenario.batch else None
        if self.shim:
            self.shim.person_env = self.env()  # the jobs a person's qrls starts get the scenario's
        self.qdeleted: set[str] = set()
        """Experiments whose live job a person deleted on the cluster (they may end cancelled)."""

    # -- setup -----------------------------------------------------------------------------------

    def setup(self) -> None:
        p = self.project
        (p / "config").mkdir(parents=True)
        (p / "dispatch").mkdir()
        (p / "config" / "reconciler.yaml").write_text(batch.config(COMMAND_TIMEOUT) if self.shim else CONFIG)
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

    def root(self, target: str) -> str:
        return str((self.project / ".reconciler" / ROOTS[target]).resolve())

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILER_", "CHAOS_"))}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        if self.shim:
            env["PATH"] = f"{batch.SHIM}{os.pathsep}{env['PATH']}"
            env.update(self.shim.env())
        env["LAUNCH_LOG"] = str(self.launch_log)
        env["CHAOS_COUNTER"] = str(self.counter)
        # Every pass is a new interpreter: keep its compiled modules in one cache outside the tree
        # (a machine that sets PYTHONDONTWRITEBYTECODE otherwise compiles ~100 modules per pass).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
        env.update(extra or {})
        return env

    # -- passes ----------------------------------------------------------------------------------

    def _argv(self) -> list[str]:
        return [sys.executable, "-m", "reconciler", "--once", "-C", str(self.project)]

    def start(self, extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
        self.counter.unlink(missing_ok=True)
        return subprocess.Popen(
            self._argv(),
            cwd=self.project,
            env=self.env(extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
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
        return rc, out + err

    def run_pass(self, what: str = "pass", extra: dict[str, str] | None = None) -> tuple[int, str]:
        return self.finish(self.start(extra), what)

    def run_pass_qstat_down(self, what: str) -> None:
        """A pass while the server refuses ``qstat``: it must mark nothing failed."""
        before = batch.failed_attempts(self.state())
        self.run_pass(what)
        new = batch.failed_attempts(self.state()) - before
        if new:
            self.violation(f"batch invariant: marked failed while qstat was failing ({what}): {sorted(new)}")

    def violation(self, text: str) -> None:
        self.outcome.violations.append(text)

    # -- faults ----------------------------------------------------------------------------------

    def step(self, step: Step) -> None:
        kind, arg = step.kind, step.arg
        if kind == "pass":
            self.run_pass()
        elif kind == "crash":  # armed passes until one dies there (some points need work to do)
            for i in range(4):
                if self.run_pass(f"{step} try {i + 1}", {"RECONCILER_CRASH_AT": arg})[0] == CRASH_EXIT_CODE:
                    break
        elif kind == "drop":
            self.run_pass(str(step), {"CHAOS_DROP": arg})
        elif kind == "slow":
            target, seconds = arg.split(":")
            self.run_pass(str(step), {"CHAOS_SLOW_ROOT": self.root(target), "CHAOS_SLOW_SECONDS": seconds})
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
        else:
            n = len(self.experiments)
            targets = batch.NEW_EXPERIMENT_TARGETS if self.shim else ["ta", "tb"]
            self.experiments.append({"id": f"e{n}", "seeds": [0], "sleep": 0.1, "targets": targets})
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
        path = self.project / "dispatch" / "state.json"
        try:
            return {e["id"]: e for e in json.loads(path.read_text())["experiments"]}
        except (OSError, ValueError, KeyError, TypeError):
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
            self.violation(f"invariant 2: a pass over a settled world committed: {text.strip()[-400:]}")
        if rc != 0:
            self.violation(f"idle pass exited {rc}: {text.strip()[-400:]}")
        state = self.state()
        # Invariant 3: nothing lost.
        missing = self.spec_ids() - set(state)
        if missing:
            self.violation(f"invariant 3: no state entry for {sorted(missing)}")
        committed = git(p, "show", "HEAD:dispatch/state.json")
        if committed != (p / "dispatch" / "state.json").read_text().strip():
            self.violation("invariant 3: the working tree's state.json differs from HEAD's")
        for exp_id, entry in sorted(state.items()):
            if entry["status"] == "cancelled" and exp_id in self.qdeleted:
                continue  # a person deleted its job on the cluster
            if entry["status"] != "done":
                self.violation(f"{exp_id} ended {entry['status']} (no fault here should fail a job)")
                continue
            result = entry.get("result_file") or f"experiments/results/{exp_id}.csv"
            if not (p / result).exists():
                self.violation(f"invariant 3: {exp_id} is done but {result} is missing")
            elif subprocess.run(["git", "cat-file", "-e", f"HEAD:{result}"], cwd=p, capture_output=True).returncode:
                self.violation(f"invariant 3: {exp_id} is done but {result} is not committed")
        # Invariant 1: exactly-once launch per attempt.
        lines = self.launch_log.read_text().split("\n") if self.launch_log.exists() else []
        seen = Counter(tuple(line.split()[:2]) for line in lines if line.strip())
        for (exp_id, attempt), n in sorted(seen.items()):
            if n > 1:
                self.violation(f"invariant 1: {exp_id} attempt {attempt} started {n} times")
            recorded = {str(a.get("n")) for a in state.get(exp_id, {}).get("attempts", [])}
            if attempt not in recorded:
                self.violation(f"invariant 1: {exp_id} attempt {attempt} ran but is not recorded ({recorded})")
        for exp_id, entry in state.items():
            current = str(entry.get("attempt"))
            if entry["status"] == "done" and (exp_id, current) not in seen:
                self.violation(f"invariant 1: {exp_id} attempt {current} is done but never started")
        if self.shim:
            for text in batch.final_violations(state, self.shim.jobs()):
                self.violation(text)
        # The reconciler's commits touch only its own paths.
        log = git(p, "log", f"--author={RECONCILER_EMAIL}", "--format=@%h", "--name-only")
        sha = ""
        for line in log.splitlines():
            if line.startswith("@"):
                sha = line[1:]
            elif line and not line.startswith(OWNED_PREFIXES):
                self.violation(f"reconciler commit {sha} touched {line}")


def play(scenario: Scenario, base: Path) -> Outcome:
    started = time.monotonic()
    run = Run(scenario, base)
    run.setup()
    try:
        for step in scenario.steps:
            run.step(step)
        run.check()
    except Exception as exc:  # a harness failure is reported with the scenario
        run.violation(f"harness error: {type(exc).__name__}: {exc}")
    run.outcome.seconds = time.monotonic() - started
    return run.outcome


def seed_from_env() -> int:
    return int(os.environ.get("CHAOS_SEED", str(DEFAULT_SEED)))
