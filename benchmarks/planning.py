"""Planning time alone: pure ``make_plan`` on synthetic in-memory inputs (no I/O, no git).

Three plans over ``n`` experiments on ``hosts`` targets:

- ``cold``: everything pending, every experiment placed and launched (the first pass);
- ``steady``: every experiment running, its sidecar already recorded, nothing to do (issue 20:
  <= 100 ms median at 10,000, measured alone). The probe answers as it does for healthy runs:
  no log tail, except 1 in 100 whose tail has a line that passes the fatal prefilter without
  being fatal (``grad norm inf``), so the full regexes run on those; ``steady_tails``: the
  same, every live run with a 20-line tail (what a probe without the target-side filter sends);
- ``staged``: 70 % of the experiments in stage 1 running, 30 % in stage 2 waiting for them:
  the stage gate is evaluated for every waiting experiment.

    .venv/bin/python -m benchmarks.planning                    # N = 10,000 on 4 targets, 5 plans a case
    .venv/bin/python -m benchmarks.planning --json --repeats 9
    .venv/bin/python -m benchmarks.planning --profile steady   # cProfile of one steady plan
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from reconciler.model.actions import ActionResult, Launch, Started
from reconciler.model.config import Config, Policies, Target, TargetKind
from reconciler.model.desired import DesiredState
from reconciler.model.observed import ObservedState, RunObservation, TargetObservation
from reconciler.model.spec import ExperimentSpec, Group
from reconciler.model.status import StateFile
from reconciler.plan import fold, make_plan

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
LOG_TAIL = tuple(f"epoch 3 step {120 + k}/500 loss 0.{5321 - k} lr 3.0e-04 12.3 it/s" for k in range(20))
"""The last 20 lines of a healthy run's log (no fatal marker: the probe does not send them)."""
SUSPECT_TAIL = (*LOG_TAIL[1:], "step 140 grad norm inf, update skipped")
"""A tail that passes the fatal prefilter (``inf`` ends a word) and matches no fatal signature."""


def _specs(n: int, staged: bool) -> tuple[ExperimentSpec, ...]:
    first = round(n * 0.7) if staged else n
    return tuple(
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
                    stage=1 if i < first else 2,
                    expected_duration_hours=10.0,
                )
                for i in range(n)
            ),
            key=lambda s: s.id,
        )
    )


def _timed(fn: Callable[[], Any], repeats: int) -> tuple[Any, list[float]]:
    out, times = None, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return out, times


def _world(n: int, hosts: int, staged: bool, repeats: int) -> dict[str, Any]:
    targets = tuple(Target(name=f"t{i}", kind=TargetKind.LOCAL, root=f"/r/t{i}", max_runs=n) for i in range(hosts))
    config = Config(project="bench", targets=targets, policies=Policies())
    desired = DesiredState(config=config, experiments=_specs(n, staged), decisions=(), revision="c0ffee" + "0" * 34)
    empty_obs = ObservedState(
        {t.name: TargetObservation(t.name, reachable=True, runs={}, host=t.name, root=t.root) for t in targets}
    )
    cold, cold_ms = _timed(lambda: make_plan(desired, StateFile(project="bench", entries=()), empty_obs, NOW), repeats)
    launches = [a for a in cold.actions if isinstance(a, Launch)]
    results = [
        ActionResult(a, True, "started", outcome=Started(host=a.target, pid=10000 + i, start_time=str(5000 + i)))
        for i, a in enumerate(launches)
    ]
    recorded = fold(cold, results, desired, NOW)
    runs: dict[str, dict[tuple[str, int], RunObservation]] = {t.name: {} for t in targets}
    for i, r in enumerate(results):
        a = r.action
        assert isinstance(a, Launch)
        runs[a.target][(a.exp_id, a.attempt)] = RunObservation(
            exp_id=a.exp_id,
            attempt=a.attempt,
            token=a.token,
            launched=True,
            pid=10000 + i,
            start_time=str(5000 + i),
            alive=True,
            heartbeat_age=3.0,
            age=300.0,
            log_tail=SUSPECT_TAIL if i % 100 == 0 else (),
            sidecar={"status": "running", "epoch": 3, "step": 120 + i % 7, "wandb_run_id": f"run{i}"},
        )
    live = ObservedState(
        {
            t.name: TargetObservation(t.name, reachable=True, runs=runs[t.name], host=t.name, root=t.root)
            for t in targets
        }
    )
    later = NOW + timedelta(minutes=5)
    # The first pass that sees the runs records what their sidecars say; the steady state is
    # the pass after it: the same answers again, nothing to do.
    recorded = make_plan(desired, recorded, live, later).state
    steady, steady_ms = _timed(lambda: make_plan(desired, recorded, live, later), repeats)
    tails = ObservedState(
        {
            name: dataclasses.replace(
                obs, runs={k: dataclasses.replace(r, log_tail=LOG_TAIL) for k, r in obs.runs.items()}
            )
            for name, obs in live.targets.items()
        }
    )
    with_tails, tails_ms = _timed(lambda: make_plan(desired, recorded, tails, later), repeats)
    return {
        "steady_tails_ms": tails_ms,
        "steady_tails_empty": with_tails.empty,
        "launches": len(launches),
        "cold_ms": cold_ms,
        "steady_ms": steady_ms,
        "steady_io_actions": len(steady.io_actions),
        "steady_empty": steady.empty,
    }


def synthetic_planning(n: int, hosts: int, repeats: int) -> dict[str, Any]:
    flat = _world(n, hosts, staged=False, repeats=repeats)
    staged = _world(n, hosts, staged=True, repeats=max(1, repeats // 2))
    return {
        "experiments": n,
        "targets": hosts,
        "cold_launches": flat["launches"],
        "cold_ms": flat["cold_ms"],
        "steady_ms": flat["steady_ms"],
        "steady_io_actions": flat["steady_io_actions"],
        "steady_empty": flat["steady_empty"],
        "steady_tails_ms": flat["steady_tails_ms"],
        "steady_tails_empty": flat["steady_tails_empty"],
        "staged_waiting": n - staged["launches"],
        "staged_ms": staged["steady_ms"],
        "staged_io_actions": staged["steady_io_actions"],
    }


def median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.planning [--n N] [--hosts H] [--repeats R] [--json] [--profile CASE]``."""
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m benchmarks.planning", description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000, help="experiments (default 10,000)")
    p.add_argument("--hosts", type=int, default=4, help="targets (default 4)")
    p.add_argument("--repeats", type=int, default=5, help="timed plans per case (default 5; staged: half)")
    p.add_argument("--json", action="store_true", help="every time, as JSON")
    p.add_argument(
        "--profile", choices=("cold", "steady", "steady_tails", "staged"), help="cProfile one plan of CASE instead"
    )
    p.add_argument("--top", type=int, default=25, help="profile rows to print (default 25)")
    opts = p.parse_args(argv)
    if opts.profile:
        return _profile(opts.profile, opts.n, opts.hosts, opts.top)
    out = synthetic_planning(opts.n, opts.hosts, opts.repeats)
    if opts.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{out['experiments']} experiments on {out['targets']} targets, median (min-max) ms:")
    for case in ("cold", "steady", "steady_tails", "staged"):
        ms = out[f"{case}_ms"]
        print(f"  {case:<13} {median(ms):8.1f}  ({min(ms):.1f}-{max(ms):.1f}, {len(ms)} plans)")
    return 0


def _profile(case: str, n: int, hosts: int, top: int) -> int:
    import cProfile
    import pstats

    global make_plan
    real, captured = make_plan, []

    def capture(*args: Any, **kwargs: Any) -> Any:
        captured.append((args, kwargs))
        return real(*args, **kwargs)

    make_plan = capture
    try:
        _world(n, hosts, staged=case == "staged", repeats=1)
    finally:
        make_plan = real
    # the calls in _world's order: cold, first live pass, steady, steady_tails
    index = {"cold": 0, "steady": 2, "steady_tails": 3, "staged": 2}[case]
    args, kwargs = captured[index]
    prof = cProfile.Profile()
    prof.enable()
    real(*args, **kwargs)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
