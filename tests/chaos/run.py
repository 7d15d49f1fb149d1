"""The long chaos run: ``python -m tests.chaos.run --scenarios 1000`` (seed: ``--seed`` or ``CHAOS_SEED``).

Prints one line per scenario, the counts per fault kind, the exit codes seen, and every violation
with its replay command; exits 1 when any invariant was violated.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.chaos.harness import FAULTS, Outcome, generate, play, seed_from_env


def play_one(seed: int, index: int, *, verbose: bool) -> Outcome:
    scenario = generate(seed, index)
    base = Path(tempfile.mkdtemp(prefix=f"chaos-{seed}-{index}-"))
    try:
        outcome = play(scenario, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if verbose:
        mark = "ok  " if not outcome.violations else "FAIL"
        text = f"{mark} {outcome.seconds:5.1f}s {outcome.passes:3d} passes  {scenario.describe()}"
        print(text + ("\n" + outcome.report() if outcome.violations else ""), flush=True)
    return outcome


def default_jobs() -> int:
    return int(os.environ.get("CHAOS_JOBS", str(min(4, os.cpu_count() or 1))))


def run_many(
    seed: int, indices: list[int], *, jobs: int = 1, verbose: bool = True, deadline: float | None = None
) -> list[Outcome]:
    """Play the scenarios, ``jobs`` at a time (each in its own project; every pass is a subprocess).
    With ``deadline`` (a ``time.monotonic()`` value) no scenario starts after it; those already
    started finish, and the result holds only the scenarios played."""

    def one(i: int) -> Outcome | None:
        if deadline is not None and time.monotonic() >= deadline:
            return None
        return play_one(seed, i, verbose=verbose)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return [o for o in pool.map(one, indices) if o is not None]


def summary(seed: int, outcomes: list[Outcome], seconds: float) -> str:
    faults: Counter[str] = Counter()
    args: Counter[str] = Counter()
    codes: Counter[int] = Counter()
    for o in outcomes:
        codes.update(o.exit_codes)
        for step in o.scenario.steps:
            if step.kind != "pass":
                faults[step.kind] += 1
                args[f"{step.kind}:{step.arg.split(':')[0]}" if step.arg else step.kind] += 1
    bad = [o for o in outcomes if o.violations]
    lines = [
        f"chaos: seed {seed}, {len(outcomes)} scenarios, {sum(o.passes for o in outcomes)} passes, {seconds:.0f} s",
        "faults injected: " + ", ".join(f"{k} {faults[k]}" for k in FAULTS),
        "fault variants:  " + ", ".join(f"{k} {n}" for k, n in sorted(args.items())),
        "exit codes:      " + ", ".join(f"{k}: {n}" for k, n in sorted(codes.items())),
        f"concurrent passes that did not overlap (unchecked): {sum(o.inconclusive for o in outcomes)}",
        f"violations:      {sum(len(o.violations) for o in bad)} in {len(bad)} scenario(s)",
    ]
    lines += [o.report() for o in bad]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.run", description=__doc__)
    parser.add_argument("--scenarios", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=None, help="default: CHAOS_SEED or the fixed seed")
    parser.add_argument("--only", type=int, action="append", help="replay this scenario index (repeatable)")
    parser.add_argument("--start", type=int, default=0, help="first scenario index")
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="scenarios at a time (CHAOS_JOBS)")
    parser.add_argument("--minutes", type=float, default=None, help="start no scenario after this many minutes")
    ns = parser.parse_args(argv)
    seed = ns.seed if ns.seed is not None else seed_from_env()
    indices = ns.only or list(range(ns.start, ns.start + ns.scenarios))
    started = time.monotonic()
    deadline = started + ns.minutes * 60 if ns.minutes else None
    outcomes = run_many(seed, indices, jobs=ns.jobs, deadline=deadline)
    print(summary(seed, outcomes, time.monotonic() - started))
    return 1 if any(o.violations for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
