"""``duration.Pilots`` (the pilot runs gathered once a pass) gives every estimate that a scan of
all the entries gives: same pilots, same median, same basis; its own entry is never its pilot;
a seed's odd method value (not text) is no spec's pilot, as before."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from reconciler.model.config import Config, Target, TargetKind
from reconciler.model.spec import ExperimentSpec
from reconciler.model.status import Status, StatusEntry
from reconciler.plan.duration import Pilots, estimate

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)
TARGETS = (
    Target("fast", TargetKind.SSH, "/r", platform_factor=0.6),
    Target("slow", TargetKind.SSH, "/r", platform_factor=1.2),
)
CONFIG = Config("p", TARGETS)


def _entries(rnd: random.Random, n: int) -> list[StatusEntry]:
    out = []
    for i in range(n):
        start = T0 + timedelta(minutes=rnd.randint(0, 600))
        out.append(
            StatusEntry(
                id=f"x{i}",
                status=rnd.choice([Status.DONE, Status.DONE, Status.FAILED, Status.RUNNING]),
                method=rnd.choice(["m", "n", ""]),
                dataset=rnd.choice(["d", "e"]),
                target=rnd.choice(["fast", "slow", "elsewhere", None]),
                started=rnd.choice([start.isoformat(), None, "not a time"]),
                finished=(start + timedelta(minutes=rnd.randint(-10, 300))).isoformat(),
            )
        )
    return out


def test_pilots_give_what_a_scan_gives() -> None:
    rnd = random.Random(20)
    for _ in range(200):
        entries = _entries(rnd, rnd.randint(0, 12))
        pilots = Pilots(entries, CONFIG)
        for i in range(4):
            spec = ExperimentSpec(
                id=f"x{i}", base_id="x", command="c", source="s", method=rnd.choice(["m", "n", ""]), dataset="d"
            )
            for target in TARGETS:
                assert estimate(spec, pilots, target, CONFIG) == estimate(spec, entries, target, CONFIG)


def test_own_entry_is_not_a_pilot_and_odd_methods_are_skipped() -> None:
    done = StatusEntry(
        id="x0",
        status=Status.DONE,
        method="m",
        dataset="d",
        started=T0.isoformat(),
        finished=(T0 + timedelta(hours=2)).isoformat(),
    )
    odd = StatusEntry(
        id="seed",
        status=Status.DONE,
        method=["m"],  # type: ignore[arg-type]
        dataset="d",
        started=T0.isoformat(),
        finished=(T0 + timedelta(hours=1)).isoformat(),
    )
    spec = ExperimentSpec(id="x0", base_id="x", command="c", source="s", method="m", dataset="d")
    other = ExperimentSpec(id="x1", base_id="x", command="c", source="s", method="m", dataset="d")
    pilots = Pilots([done, odd], CONFIG)
    assert estimate(spec, pilots, TARGETS[0], CONFIG) is None
    assert estimate(other, pilots, TARGETS[0], CONFIG) == estimate(other, [done, odd], TARGETS[0], CONFIG)
    assert estimate(other, pilots, TARGETS[0], CONFIG) is not None
