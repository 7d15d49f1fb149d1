"""Benchmarks: remote commands per pass, a naive poller side by side, and planning time.

    .venv/bin/python benchmarks/run.py [--quick]

Prints a table and writes ``benchmarks/out/results.json`` (and ``benchmarks/out/commands.png``
when matplotlib happens to be importable; it is not a dependency).

1. Real passes (``reconciler.engine.reconcile_once``, in-process) over a real project: a temp git
   repo with H ``kind: local`` targets (distinct roots) and N experiments. Two fleets:
   ``alive`` (each job sleeps, so runs stay running: launch pass, then steady passes) and
   ``done`` (each job writes the canonical result CSV and exits: launch, collect, idle passes).
   Per pass: wall time, remote commands (sum of the targets' transports' ``commands``), bytes
   transferred, planning time (``make_plan`` alone), observe time, commit time, whether HEAD moved.
   Measured by wrapping ``open_runners`` / ``observe`` / ``make_plan`` / ``commit_status`` as the
   engine module sees them; the engine itself is not modified.
2. A naive poller over the same live fleet: what the seed system's agents did, one shell command
   per running experiment per poll (``ps -p PID || test -f exit_code``) through the same
   ``LocalTransport``; command count and wall time next to one steady reconcile pass.
3. Planning time for 10,000 experiments: pure ``make_plan`` on synthetic in-memory inputs
   (the cold pass that places 10k pending experiments, and the steady pass over 10k live runs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler import engine  # noqa: E402
from reconciler.backends.local import LocalTransport  # noqa: E402
from reconciler.model.actions import ActionResult, Launch  # noqa: E402
from reconciler.model.config import Config, Policies, Target, TargetKind  # noqa: E402
from reconciler.model.desired import DesiredState  # noqa: E402
from reconciler.model.observed import ObservedState, RunObservation, TargetObservation  # noqa: E402
from reconciler.model.spec import ExperimentSpec, Group  # noqa: E402
from reconciler.model.status import StateFile, Status  # noqa: E402
from reconciler.plan import fold, make_plan  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}
CSV_HEADER = "exp_id,method,dataset,group,metric,seed,value,host,gpu,finished_at"


# --------------------------------------------------------------------------- project


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout.strip()


def make_project(root: Path, hosts: int, n: int, mode: str) -> Path:
    """A git repo with ``hosts`` local targets and ``n`` experiments (``mode``: alive | done)."""
    project = root / "project"
    (project / "config").mkdir(parents=True)
    (project / "dispatch").mkdir()
    per_target = -(-n // hosts)
    targets = "".join(
        f"  t{i}:\n    kind: local\n    root: .reconciler/t{i}\n    max_runs: {per_target}\n" for i in range(hosts)
    )
    (project / "config" / "reconciler.yaml").write_text(
        "version: 1\nproject: bench\ntargets:\n"
        + targets
        + "policies:\n  poll_interval: 1\n  backoff: {base_seconds: 0, factor: 1, max_seconds: 0}\n"
    )
    # A job script that accepts ``--dry-run`` (the environment check appends it) and exits 0.
    (project / "job.sh").write_text(
        'case " $* " in *" --dry-run "*) exit 0 ;; esac\n'
        'if [ "$4" = alive ]; then exec sleep 3600; fi\n'
        f'printf \'%s\\n%s\\n\' {CSV_HEADER} "$1,m,d,main,accuracy,$2,0.9,h,,2026-11-26T00:00:00Z" > "$3"\n'
    )
    command = f"sh job.sh {{exp_id}} {{seed}} {{result_file}} {mode}"
    names = ", ".join(f"t{i}" for i in range(hosts))
    (project / "dispatch" / "experiments.yaml").write_text(
        textwrap.dedent(
            f"""\
            version: 1
            defaults:
              expected_duration_hours: 10
              targets: [{names}]
              max_retries: 0
            experiments:
              - id: job
                command: {json.dumps(command)}
                seeds: {list(range(n))}
                group: main
                method: m
                dataset: d
            """
        )
    )
    (project / ".gitignore").write_text(".reconciler/\n")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "desired state")
    return project


def kill_runs(project: Path) -> int:
    """Kill every run's process group (each wrapper is a session leader). Returns how many."""
    killed = 0
    for pid_file in (project / ".reconciler").glob("t*/runs/*/*/pid"):
        with contextlib.suppress(ValueError, OSError):
            os.killpg(int(pid_file.read_text().strip()), signal.SIGKILL)
            killed += 1
    return killed


# --------------------------------------------------------------------------- instrumentation


class Probe:
    """Wraps the names the engine module calls, to time and count one pass."""

    def __init__(self) -> None:
        self.runners: list[Any] = []
        self.timings: dict[str, float] = {}

    def _timed(self, key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - t0

        return wrapper

    def _timed_async(self, key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - t0

        return wrapper

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        originals = {
            name: getattr(engine, name) for name in ("open_runners", "make_plan", "commit_status", "observe", "execute")
        }

        def open_runners(*args: Any, **kwargs: Any) -> Any:
            runners = originals["open_runners"](*args, **kwargs)
            self.runners.append(runners)
            return runners

        setattr(engine, "open_runners", open_runners)  # noqa: B010
        setattr(engine, "make_plan", self._timed("plan", originals["make_plan"]))  # noqa: B010
        setattr(engine, "commit_status", self._timed("commit", originals["commit_status"]))  # noqa: B010
        setattr(engine, "observe", self._timed_async("observe", originals["observe"]))  # noqa: B010
        setattr(engine, "execute", self._timed_async("apply", originals["execute"]))  # noqa: B010
        try:
            yield
        finally:
            for name, fn in originals.items():
                setattr(engine, name, fn)


def one_pass(project: Path, label: str) -> dict[str, Any]:
    probe = Probe()
    head = git(project, "rev-parse", "HEAD")
    with probe.installed():
        t0 = time.perf_counter()
        result = engine.reconcile_once(project, pull=False, push_changes=False, log=lambda _m: None)
        wall = time.perf_counter() - t0
    runners = probe.runners[0]
    transports = [r.transport for r in runners.by_name.values()]
    after = git(project, "rev-parse", "HEAD")
    counts: dict[str, int] = {}
    for e in result.state.entries:
        counts[e.status.value] = counts.get(e.status.value, 0) + 1
    return {
        "pass": label,
        "wall_s": wall,
        "commands": runners.commands,
        "bytes": sum(t.bytes_transferred for t in transports),
        "plan_ms": probe.timings.get("plan", 0.0) * 1e3,
        "observe_ms": probe.timings.get("observe", 0.0) * 1e3,
        "apply_ms": probe.timings.get("apply", 0.0) * 1e3,
        "commit_ms": probe.timings.get("commit", 0.0) * 1e3,
        "io_actions": len(result.plan.io_actions),
        "committed": after != head,
        "statuses": counts,
        "unreachable": dict(result.unreachable),
        "failed_actions": [r.message for r in result.results if not r.ok][:3],
    }


# --------------------------------------------------------------------------- naive poller


async def naive_poll(project: Path) -> dict[str, Any]:
    """The seed agents' poll: one command per running experiment (``ps -p PID`` / ``test -f exit_code``)."""
    state = StateFile.from_dict(json.loads((project / "dispatch" / "state.json").read_text()))
    by_target: dict[str, list[tuple[int, str]]] = {}
    for e in state.entries:
        cur = e.current
        if e.status is not Status.RUNNING or cur is None or cur.pid is None:
            continue
        by_target.setdefault(cur.target, []).append((cur.pid, cur.run_dir))
    transports = {name: LocalTransport(name=name) for name in by_target}

    async def poll(name: str, runs: list[tuple[int, str]]) -> list[str]:
        out = []
        for pid, run_dir in runs:  # one agent per host, polling its runs one by one
            script = (
                f"if ps -p {pid} >/dev/null 2>&1; then echo running; "
                f"elif test -f {shlex.quote(run_dir)}/exit_code; then echo exited; else echo lost; fi"
            )
            done = await transports[name].run(script, timeout=60)
            out.append(done.stdout.strip())
        return out

    t0 = time.perf_counter()
    answers = await asyncio.gather(*(poll(n, r) for n, r in sorted(by_target.items())))
    wall = time.perf_counter() - t0
    seen = [a for chunk in answers for a in chunk]
    return {
        "wall_s": wall,
        "commands": sum(t.commands for t in transports.values()),
        "bytes": sum(t.bytes_transferred for t in transports.values()),
        "running_seen": seen.count("running"),
        "polled": len(seen),
    }


# --------------------------------------------------------------------------- fleets


def run_fleet(hosts: int, n: int, mode: str, steady_passes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        project = make_project(Path(tmp), hosts, n, mode)
        passes: list[dict[str, Any]] = []
        naive: dict[str, Any] | None = None
        try:
            passes.append(one_pass(project, "launch"))
            if mode == "done":
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    p = one_pass(project, "collect")
                    passes.append(p)
                    if p["statuses"].get("done", 0) == n:
                        break
                    time.sleep(0.2)
                label = "idle"
            else:
                label = "steady"
            for _ in range(steady_passes):
                passes.append(one_pass(project, label))
            if mode == "alive":
                naive = asyncio.run(naive_poll(project))
        finally:
            kill_runs(project)
    steady = [p for p in passes if p["pass"] in ("steady", "idle")]
    last = steady[-1]
    return {
        "mode": mode,
        "hosts": hosts,
        "experiments": n,
        "passes": passes,
        "steady_commands": last["commands"],
        "commands_per_host": last["commands"] / hosts,
        "steady_commits": sum(p["committed"] for p in steady[1:]),  # after the first steady pass
        "naive": naive,
    }


# --------------------------------------------------------------------------- planning at 10k


def synthetic_planning(n: int, hosts: int, repeats: int) -> dict[str, Any]:
    targets = tuple(Target(name=f"t{i}", kind=TargetKind.LOCAL, root=f"/r/t{i}", max_runs=n) for i in range(hosts))
    config = Config(project="bench", targets=targets, policies=Policies())
    specs = tuple(
        sorted(
            (
                ExperimentSpec(
                    id=f"job_s{i}",
                    base_id="job",
                    command="python3 train.py --seed {seed} --out {result_file}",
                    source="dispatch/experiments.yaml:6",
                    seed=i,
                    group=Group.MAIN,
                    method="m",
                    dataset="d",
                    expected_duration_hours=10.0,
                )
                for i in range(n)
            ),
            key=lambda s: s.id,
        )
    )
    desired = DesiredState(config=config, experiments=specs, decisions=(), revision="c0ffee" + "0" * 34)
    now = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    empty_obs = ObservedState(
        {t.name: TargetObservation(t.name, reachable=True, runs={}, host=t.name, root=t.root) for t in targets}
    )
    empty = StateFile(project="bench", entries=())

    def timed(fn: Callable[[], Any]) -> tuple[Any, list[float]]:
        out, times = None, []
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return out, times

    cold, cold_ms = timed(lambda: make_plan(desired, empty, empty_obs, now))
    launches = [a for a in cold.actions if isinstance(a, Launch)]
    results = [
        ActionResult(a, True, "started", data={"pid": 10000 + i, "start_time": str(5000 + i), "host": a.target})
        for i, a in enumerate(launches)
    ]
    recorded = fold(cold, results, desired, now)
    later = now + timedelta(minutes=5)
    runs: dict[str, dict[tuple[str, int], RunObservation]] = {t.name: {} for t in targets}
    for r in results:
        a = r.action
        assert isinstance(a, Launch)
        runs[a.target][(a.exp_id, a.attempt)] = RunObservation(
            exp_id=a.exp_id,
            attempt=a.attempt,
            token=a.token,
            launched=True,
            pid=int(r.data["pid"]),
            start_time=str(r.data["start_time"]),
            alive=True,
            heartbeat_age=3.0,
            age=300.0,
        )
    live_obs = ObservedState(
        {
            t.name: TargetObservation(t.name, reachable=True, runs=runs[t.name], host=t.name, root=t.root)
            for t in targets
        }
    )
    steady, steady_ms = timed(lambda: make_plan(desired, recorded, live_obs, later))
    return {
        "experiments": n,
        "targets": hosts,
        "cold_launches": len(launches),
        "cold_ms": cold_ms,
        "steady_io_actions": len(steady.io_actions),
        "steady_empty": steady.empty,
        "steady_ms": steady_ms,
    }


# --------------------------------------------------------------------------- report


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]

    def fmt(r: list[Any]) -> str:
        return "  ".join(str(x).rjust(w) for x, w in zip(r, widths, strict=True))

    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


def report(results: dict[str, Any]) -> str:
    lines = [
        f"reconciler benchmarks — measured on this machine ({results['machine']['cpus']} cores, "
        f"{results['machine']['platform']}, Python {results['machine']['python']}); local targets only",
        "",
        "1. Real passes (reconcile_once in-process); commands = remote commands over all targets",
    ]
    rows = []
    for f in results["fleets"]:
        for i, p in enumerate(f["passes"]):
            rows.append(
                [
                    f["mode"],
                    f["hosts"],
                    f["experiments"],
                    f"{i + 1}:{p['pass']}",
                    f"{p['wall_s']:.2f}",
                    p["commands"],
                    f"{p['commands'] / f['hosts']:.1f}",
                    f"{p['bytes'] / 1024:.1f}",
                    f"{p['observe_ms']:.0f}",
                    f"{p['plan_ms']:.1f}",
                    f"{p['apply_ms']:.0f}",
                    f"{p['commit_ms']:.0f}",
                    "yes" if p["committed"] else "no",
                ]
            )
    lines.append(
        table(
            rows,
            [
                "fleet",
                "H",
                "N",
                "pass",
                "wall s",
                "cmds",
                "cmds/H",
                "KiB",
                "observe ms",
                "plan ms",
                "apply ms",
                "commit ms",
                "commit",
            ],
        )
    )
    lines += ["", "Steady state (runs alive / all done, nothing to do): commands per pass vs H"]
    rows = []
    for f in results["fleets"]:
        ok = f["steady_commands"] == f["hosts"] and f["steady_commits"] == 0
        head = "unchanged" if f["steady_commits"] == 0 else f"{f['steady_commits']} commit(s)"
        rows.append(
            [
                f["mode"],
                f["hosts"],
                f["experiments"],
                f["steady_commands"],
                f"{f['commands_per_host']:.2f}",
                head,
                "OK" if ok else "FAIL",
            ]
        )
    lines.append(table(rows, ["fleet", "H", "N", "cmds/pass", "cmds/H", "HEAD on idle pass", "check"]))
    for f in results["fleets"]:
        errors = sorted({m for p in f["passes"] for m in p["failed_actions"]})
        unreachable = sorted({f"{t}: {e}" for p in f["passes"] for t, e in p["unreachable"].items()})
        if errors or unreachable:
            where = f"  {f['mode']} H={f['hosts']} N={f['experiments']}: "
            lines.append(where + "; ".join([*errors, *unreachable])[:300])
    lines += ["", "2. Naive poller (seed agents: one command per running experiment per poll) vs one steady pass"]
    rows = []
    for f in results["fleets"]:
        if f["naive"] is None:
            continue
        ours = [p for p in f["passes"] if p["pass"] == "steady"][-1]
        nv = f["naive"]
        observe_s = ours["observe_ms"] / 1e3
        rows.append(
            [
                f["hosts"],
                f["experiments"],
                nv["commands"],
                ours["commands"],
                f"{nv['commands'] / ours['commands']:.1f}x",
                f"{nv['wall_s']:.2f}",
                f"{observe_s:.2f}",
                f"{ours['wall_s']:.2f}",
                f"{nv['wall_s'] / observe_s:.1f}x",
            ]
        )
    lines.append(
        table(
            rows,
            [
                "H",
                "N",
                "naive cmds",
                "our cmds",
                "ratio",
                "naive s",
                "our observe s",
                "our pass s",
                "time ratio (observe)",
            ],
        )
    )
    s = results["planning"]

    def med(xs: list[float]) -> float:
        return sorted(xs)[len(xs) // 2]

    lines += [
        "",
        f"3. Planning time, pure make_plan, {s['experiments']} experiments on {s['targets']} targets "
        f"(median of {len(s['steady_ms'])}; target < 200 ms)",
        f"   steady (all {s['experiments']} live, nothing to do): {med(s['steady_ms']):.0f} ms "
        f"(min {min(s['steady_ms']):.0f}, max {max(s['steady_ms']):.0f}); io actions {s['steady_io_actions']}, "
        f"empty plan: {s['steady_empty']}  -> {'OK' if med(s['steady_ms']) < 200 else 'OVER TARGET'}",
        f"   cold   (all pending, {s['cold_launches']} launches placed): {med(s['cold_ms']):.0f} ms "
        f"(min {min(s['cold_ms']):.0f}, max {max(s['cold_ms']):.0f})",
    ]
    return "\n".join(lines)


def plot(results: dict[str, Any]) -> Path | None:
    try:
        import matplotlib  # type: ignore[import-not-found]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found]
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for hosts in sorted({f["hosts"] for f in results["fleets"] if f["naive"]}):
        fl = sorted(
            (f for f in results["fleets"] if f["hosts"] == hosts and f["naive"]), key=lambda f: f["experiments"]
        )
        xs = [f["experiments"] for f in fl]
        ax.plot(xs, [f["steady_commands"] for f in fl], "o-", label=f"reconciler, H={hosts}")
        ax.plot(xs, [f["naive"]["commands"] for f in fl], "s--", label=f"naive poller, H={hosts}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("running experiments")
    ax.set_ylabel("remote commands per poll")
    ax.set_title(f"Commands per pass (measured, {results['machine']['cpus']} cores)")
    ax.legend()
    path = OUT / "commands.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller fleets (under 2 minutes)")
    args = ap.parse_args()
    os.environ.update(GIT_ENV)
    sizes = [10, 100] if args.quick else [10, 100, 1000]
    hosts_list = [1, 4]
    results: dict[str, Any] = {
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "note": "measured on this machine; local targets (subprocess transport), no network",
        },
        "fleets": [],
    }
    t_all = time.perf_counter()
    for mode in ("alive", "done"):
        for hosts in hosts_list:
            for n in sizes:
                if mode == "done" and n > 100 and args.quick:
                    continue
                t0 = time.perf_counter()
                fleet = run_fleet(hosts, n, mode, steady_passes=2)
                print(f"  {mode} H={hosts} N={n}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
                results["fleets"].append(fleet)
    results["planning"] = synthetic_planning(10_000, 4, repeats=3 if args.quick else 5)
    results["total_s"] = time.perf_counter() - t_all
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    text = report(results)
    png = plot(results)
    print(text)
    print(f"\nwrote {OUT / 'results.json'}" + (f" and {png}" if png else " (no PNG: matplotlib not importable)"))
    print(f"total {results['total_s']:.0f} s")
    failed = any(f["steady_commands"] != f["hosts"] or f["steady_commits"] for f in results["fleets"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
