"""The interactive commands at scale (issue 19, item 7): ``reconcile status`` (its default view),
``status --json``, ``plan`` and ``validate`` on a project of N experiments, each timed end to end
as a person or an agent runs it (a fresh ``reconcile`` process: interpreter start, imports, git,
load, render), the median of a few runs.

The project: one ``local`` target (its root empty: the probe is cheap, so ``plan`` measures the
controller's load, plan and rendering), one dispatch file of N/100 experiments x 100 seeds, and a
committed ``dispatch/state.json`` of N entries (55 % done with results, 5 % failed with notes,
10 % running, 30 % pending with a waiting reason), as a year of sweeps leaves it.

    .venv/bin/python -m benchmarks.interactive            # N = 10,000, 5 runs per command
    .venv/bin/python -m benchmarks.interactive --n 1000 --runs 3

Goals at 10,000 (issue 19): ``status`` <= 0.5 s, ``status --json`` <= 1 s, ``plan`` <= 1.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from reconciler.model.status import Attempt, Condition, StateFile, Status, StatusEntry

GOALS = {"status": 0.5, "status --json": 1.0, "plan": 1.5}
SEEDS = 100


def build(root: Path, n: int) -> Path:
    """A committed project of ``n`` experiments (see the module docstring)."""
    project = root / "project"
    (project / "config").mkdir(parents=True)
    (project / "dispatch").mkdir()
    config = {
        "version": 1,
        "project": "interactive",
        "targets": {"local": {"kind": "local", "root": ".reconciler/runs-local", "max_runs": 1}},
    }
    # (one slot: ``plan`` places one experiment and says why each of the others waits)
    (project / "config" / "reconciler.yaml").write_text(yaml.safe_dump(config))
    specs = [
        {
            "id": f"sweep{k:03d}",
            "command": f"python3 train.py --lr 0.{k} --seed {{seed}} --out {{result_file}}",
            "seeds": list(range(SEEDS)),
            "method": f"m{k % 7}",
            "dataset": f"d{k % 5}",
            "phase": f"phase{k // 20}",
            "expected_duration_hours": 1.0,
        }
        for k in range(max(1, n // SEEDS))
    ]
    (project / "dispatch" / "sweeps.yaml").write_text(yaml.safe_dump({"version": 1, "experiments": specs}))
    (project / "dispatch" / "state.json").write_text(_state(project).dumps())
    (project / ".gitignore").write_text(".reconciler/\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@localhost"}
    env.update(GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@localhost")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "a year of sweeps"]):
        subprocess.run(["git", *args], cwd=project, env=env, check=True)
    return project


def _state(project: Path) -> StateFile:
    """The state a year of passes leaves: each entry synced with its spec (as ``plan.entries``
    keeps it), then given its status."""
    from reconciler.load import load_desired
    from reconciler.plan.entries import new_entry

    desired = load_desired(project)
    policies = desired.config.policies
    entries = []
    for i, spec in enumerate(desired.experiments):
        base = new_entry(spec, policies)
        exp_id, command = spec.id, spec.command
        bucket = i % 20
        if bucket < 11:
            attempt = Attempt(1, "local", command, f".reconciler/runs-local/runs/{exp_id}/1", "t", exit_code=0)
            entry = _with(base, status=Status.DONE, target="local", attempt=1, attempts=(attempt,))
            entry = _with(entry, results=(("accuracy", 0.9), ("loss", 0.3)))
            entry = _with(entry, started="2026-06-01T10:00:00+00:00", finished="2026-06-01T11:00:00+00:00")
        elif bucket < 12:
            attempt = Attempt(3, "local", command, f".reconciler/runs-local/runs/{exp_id}/3", "t", exit_code=1)
            entry = _with(base, status=Status.FAILED, target="local", attempt=3, attempts=(attempt,))
            note = "attempt 3 failed: cuda_oom: torch.cuda.OutOfMemoryError: CUDA out of memory. " * 3
            entry = _with(entry, notes=note, failure_class="cuda_oom", retry_count=3)
        elif bucket < 14:
            attempt = Attempt(1, "local", command, f".reconciler/runs-local/runs/{exp_id}/1", "t", pid=4242)
            entry = _with(base, status=Status.RUNNING, target="local", attempt=1, attempts=(attempt,))
            entry = _with(entry, started="2026-12-01T10:00:00+00:00", sidecar=(("progress", 0.5),))
        else:
            why = "no free GPU on lab1 (GPU 0 NVIDIA H100 80GB HBM3 at max_runs_per_gpu (1 of 1)); " * 2
            entry = _with(base, waiting_reason=why.strip())
            if i % 2:
                entry = _with(entry, conditions=(Condition("OutOfSync", True, "SpecChanged", "x", ""),))
        entries.append(entry)
    return StateFile(project="interactive", entries=tuple(sorted(entries, key=lambda e: e.id)))


def _with(entry: StatusEntry, **changes: object) -> StatusEntry:
    import dataclasses

    return dataclasses.replace(entry, **changes)  # type: ignore[arg-type]


def timed(project: Path, args: list[str], runs: int) -> tuple[float, int]:
    """Median wall seconds of ``reconcile ARGS -C project`` (a fresh process each), and its exit."""
    times = []
    code = 0
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", *args, "-C", str(project)],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "120"},
            check=False,
        )
        times.append(time.perf_counter() - start)
        code = done.returncode
        if done.returncode not in (0, 1):
            raise SystemExit(f"reconcile {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return statistics.median(times), code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", dest="as_json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="reconciler-interactive-") as scratch:
        project = build(Path(scratch), args.n)
        figures: dict[str, float] = {}
        for name, cmd in (
            ("status", ["status"]),
            ("status --json", ["status", "--json"]),
            ("status --status failed", ["status", "--status", "failed"]),
            ("plan", ["plan"]),
            ("plan --json", ["plan", "--json"]),
            ("validate", ["validate"]),
        ):
            figures[name] = round(timed(project, cmd, args.runs)[0], 3)
            print(f"{name}: {figures[name]:.3f} s", file=sys.stderr)
        startup = round(timed(project, ["--version"], args.runs)[0], 3)
    if args.as_json:
        print(json.dumps({"n": args.n, "startup": startup, "seconds": figures, "goals": GOALS}, indent=2))
    else:
        print(f"| command (N = {args.n:,}) | median s | goal s |")
        print("| --- | --- | --- |")
        print(f"| `reconcile --version` (interpreter + CLI start) | {startup:.3f} | |")
        for name, secs in figures.items():
            goal = GOALS.get(name)
            print(f"| `reconcile {name}` | {secs:.3f} | {goal if goal is not None else ''} |")
    missed = [name for name, goal in GOALS.items() if figures[name] > goal]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
