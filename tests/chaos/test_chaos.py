"""The CI-sized chaos run: ``CHAOS_SCENARIOS`` seeded scenarios (``CHAOS_SEED``), no violation.

Each scenario is a real project driven by ``reconcile --once`` subprocesses through crashes,
dropped target commands, slow and vanished targets, concurrent commits and passes, a full disk and
a corrupt state file; then the invariants of design section 4 are checked (``harness.Run.check``).
A seed-stable share (``CHAOS_BATCH``, default a quarter) runs on PBS targets through the PBS shim,
with scheduler faults, a person's ``qdel``, ``qstat`` refusing, a crash after ``qsub``, and the
batch invariants (``tests.chaos.batch``). Shares run on fake-GPU targets (``CHAOS_GPU``) and on
real OpenSSH targets (``CHAOS_SSH``; skipped without sshd or root), and every pass is followed by
the issue-14 checks: GPU exclusivity from the live processes, provenance of done entries, no
untracked file, no commit without a transition (``harness.Run.after_pass``).
The long run is ``python -m tests.chaos.run --scenarios 1000``.
"""

from __future__ import annotations

import os

import pytest

from tests.chaos.harness import seed_from_env
from tests.chaos.run import default_jobs, run_many, summary

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

CI_SCENARIOS = 50
"""About 5-6 minutes on 2 cores (a pass is a fresh interpreter: ~0.8 s; ~10 scenarios a minute)."""

KNOWN_BUGS: dict[str, str] = {}
"""Violations of bugs found by this suite and reported, not fixed yet, by name and a text they
contain: the test is an xfail while every violation is one of these. Empty: none is known."""


@pytest.mark.timeout(1800)
def test_chaos_scenarios_keep_the_invariants() -> None:
    seed = seed_from_env()
    count = int(os.environ.get("CHAOS_SCENARIOS", str(CI_SCENARIOS)))
    outcomes = run_many(seed, list(range(count)), jobs=default_jobs(), verbose=False)
    report = summary(seed, outcomes, sum(o.seconds for o in outcomes))
    print(report)
    found = [v for o in outcomes for v in o.violations]
    unknown = [v for v in found if not any(sig in v for sig in KNOWN_BUGS.values())]
    assert not unknown, report
    if found:
        seen = sorted(name for name, sig in KNOWN_BUGS.items() if any(sig in v for v in found))
        pytest.xfail(f"known bugs only ({', '.join(seen)}): {len(found)} violation(s); seed {seed}")
