"""The named scenarios of issue 14 (``tests.chaos.named``) keep every invariant: one test each, so
each passes once the bug it names is fixed. On the code issue 14 was filed against, each fails
with the invariant that caught it (item1*/item3: a, item2: b, item5: d, item8: c)."""

from __future__ import annotations

import pytest

from tests.chaos.named import named
from tests.chaos.run import play_one

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(named()))
def test_named_scenario_keeps_the_invariants(name: str) -> None:
    scenario = named()[name]
    outcome = play_one(scenario.seed, scenario.index, verbose=False, scenario=scenario)
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    assert not outcome.violations, outcome.report()
    assert outcome.checks["b:provenance"] and outcome.checks["d:commits"]
