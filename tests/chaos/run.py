"""The long chaos run: ``python -m tests.chaos.run --scenarios 1000`` (seed: ``--seed``, else
``CHAOS_SEED``, else ``LONG_SEED``, the seed of the issue-14 long run).

Prints one line per scenario, then a summary: scenarios per kind (local, gpu, ssh, pbs), passes,
faults per kind and variant, exit codes, invariant checks run and violations per invariant, and
every violation with its replay command (``--markdown``: the counts as a table for ``docs/``);
exits 1 when any invariant was violated.
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
from dataclasses import dataclass, field
from pathlib import Path

from tests.chaos.harness import INVARIANTS, Outcome, play
from tests.chaos.named import named
from tests.chaos.scenarios import FAULTS, Scenario, generate

LONG_SEED = 20261205
"""The seed of the long run with the issue-14 invariants (the 1,000-scenario run of issue 9 used
``harness.DEFAULT_SEED``)."""
KINDS = ("local", "gpu", "ssh", "pbs")


def play_one(seed: int, index: int, *, verbose: bool, scenario: Scenario | None = None) -> Outcome:
    scenario = scenario or generate(seed, index)
    base = Path(tempfile.mkdtemp(prefix=f"chaos-{seed}-{index}-"))
    try:
        outcome = play(scenario, base)
    finally:
        if os.environ.get("CHAOS_KEEP"):  # a replay kept for a look: its project stays
            print(f"kept: {base}", flush=True)
        else:
            shutil.rmtree(base, ignore_errors=True)
    if verbose:
        mark = "ok  " if not outcome.violations else "FAIL"
        if outcome.skipped:
            print(f"skip {outcome.skipped}  {scenario.describe()}", flush=True)
            return outcome
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


@dataclass
class Totals:
    """The counts of a run (``summary`` prints them; ``markdown`` makes the docs table)."""

    scenarios: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    passes: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    variants: Counter[str] = field(default_factory=Counter)
    codes: Counter[int] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    failed_scenarios: int = 0

    @classmethod
    def of(cls, outcomes: list[Outcome]) -> Totals:
        t = cls()
        for o in outcomes:
            if o.skipped:
                t.skipped += 1
                continue
            t.scenarios[o.scenario.kind] += 1
            t.passes += o.passes
            t.codes.update(o.exit_codes)
            t.checks.update(o.checks)
            t.violations.update(o.by_invariant)
            t.failed_scenarios += bool(o.violations)
            for step in o.scenario.steps:
                if step.kind != "pass":
                    t.faults[step.kind] += 1
                    t.variants[f"{step.kind}:{step.arg.split(':')[0]}" if step.arg else step.kind] += 1
        return t


def summary(seed: int, outcomes: list[Outcome], seconds: float) -> str:
    t = Totals.of(outcomes)
    bad = [o for o in outcomes if o.violations]
    played = sum(t.scenarios.values())
    lines = [
        f"chaos: seed {seed}, {played} scenarios, {t.passes} passes, {seconds:.0f} s",
        "scenarios:       " + ", ".join(f"{k} {t.scenarios[k]}" for k in KINDS) + f", skipped {t.skipped}",
        "faults injected: " + ", ".join(f"{k} {t.faults[k]}" for k in FAULTS),
        "fault variants:  " + ", ".join(f"{k} {n}" for k, n in sorted(t.variants.items())),
        "exit codes:      " + ", ".join(f"{k}: {n}" for k, n in sorted(t.codes.items())),
        "checks run:      " + ", ".join(f"{k} {t.checks[k]}" for k in INVARIANTS if t.checks[k]),
        "violations by invariant: "
        + (", ".join(f"{k} {t.violations[k]}" for k in INVARIANTS if t.violations[k]) or "none"),
        f"concurrent passes that did not overlap (unchecked): {sum(o.inconclusive for o in outcomes)}",
        f"kills that came after their pass ended (not injected): {sum(o.kill_missed for o in outcomes)}",
        f"violations:      {sum(len(o.violations) for o in bad)} in {len(bad)} scenario(s)",
    ]
    lines += [o.report() for o in bad]
    return "\n".join(lines)


def markdown(seed: int, outcomes: list[Outcome], seconds: float) -> str:
    """The run's counts as Markdown, for ``docs/``."""
    t = Totals.of(outcomes)
    rows = [
        ("seed", str(seed)),
        ("scenarios", f"{sum(t.scenarios.values())} ({', '.join(f'{k} {t.scenarios[k]}' for k in KINDS)})"),
        ("passes (`reconcile --once` processes)", str(t.passes)),
        ("wall time", f"{seconds / 60:.0f} min"),
        *((f"fault `{k}`", str(t.faults[k])) for k in FAULTS),
        *((f"checks of invariant {k}", str(t.checks[k])) for k in INVARIANTS if t.checks[k]),
        ("violations", str(sum(t.violations.values()))),
        *((f"violations of {k}", str(t.violations[k])) for k in INVARIANTS if t.violations[k]),
    ]
    return "\n".join(["| what | count |", "| --- | --- |", *(f"| {a} | {b} |" for a, b in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.run", description=__doc__)
    parser.add_argument("--scenarios", "--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=None, help=f"default: CHAOS_SEED, else {LONG_SEED}")
    parser.add_argument("--markdown", action="store_true", help="also print the counts as a Markdown table")
    parser.add_argument("--only", type=int, action="append", help="replay this scenario index (repeatable)")
    parser.add_argument(
        "--named", action="append", choices=[*named(), "all"], help="play a named scenario (tests.chaos.named)"
    )
    parser.add_argument("--start", type=int, default=0, help="first scenario index")
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="scenarios at a time (CHAOS_JOBS)")
    parser.add_argument("--minutes", type=float, default=None, help="start no scenario after this many minutes")
    ns = parser.parse_args(argv)
    seed = ns.seed if ns.seed is not None else int(os.environ.get("CHAOS_SEED", str(LONG_SEED)))
    indices = ns.only or list(range(ns.start, ns.start + ns.scenarios))
    started = time.monotonic()
    deadline = started + ns.minutes * 60 if ns.minutes else None
    if ns.named:
        chosen = [s for n, s in named().items() if n in ns.named or "all" in ns.named]
        outcomes = [play_one(s.seed, s.index, verbose=True, scenario=s) for s in chosen]
    else:
        outcomes = run_many(seed, indices, jobs=ns.jobs, deadline=deadline)
    seconds = time.monotonic() - started
    print(summary(seed, outcomes, seconds))
    if ns.markdown:
        print(markdown(seed, outcomes, seconds))
    return 1 if any(o.violations for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
