"""The seed's duration rule: max(pilot hours x platform factor x 1.2, 0.5 h), with its basis."""

from __future__ import annotations

import dataclasses

from reconciler.model.config import Config, Target, TargetKind
from reconciler.model.spec import ExperimentSpec
from reconciler.model.status import Status, StatusEntry
from reconciler.plan.duration import estimate

FAST = Target("fast", TargetKind.SSH, "/r", platform_factor=0.6)
SLOW = Target("slow", TargetKind.SSH, "/r", platform_factor=1.2)
CONFIG = Config("p", (FAST, SLOW))


def spec(**kw: object) -> ExperimentSpec:
    return ExperimentSpec(id="x", base_id="x", command="c", source="s", method="m", dataset="d", **kw)  # type: ignore[arg-type]


def done(exp_id: str, minutes: int, target: str = "slow", method: str = "m") -> StatusEntry:
    return StatusEntry(
        id=exp_id,
        status=Status.DONE,
        method=method,
        dataset="d",
        target=target,
        started="2026-11-26T10:00:00+00:00",
        finished=f"2026-11-26T{10 + minutes // 60:02d}:{minutes % 60:02d}:00+00:00",
    )


def test_spec_value_wins() -> None:
    assert estimate(spec(expected_duration_hours=3.0), [done("p", 30)], FAST, CONFIG) == (3.0, "spec")


def test_floor_of_half_an_hour() -> None:
    hours, basis = estimate(spec(), [done("p", 6)], FAST, CONFIG) or (0, "")
    assert hours == 0.5
    assert "floor 0.5 h" in basis


def test_runtime_is_normalised_by_the_pilot_platform() -> None:
    # 120 min on a factor-1.2 target = 100 min at factor 1; on a factor-0.6 target x 1.2 buffer = 1.2 h.
    hours, basis = estimate(spec(), [done("p", 120, target="slow")], FAST, CONFIG) or (0, "")
    assert abs(hours - 1.2) < 1e-9
    assert basis.startswith("pilot p: median 100.0 min x platform 0.6 (fast)")


def test_other_methods_and_unfinished_runs_are_not_pilots() -> None:
    running = dataclasses.replace(done("q", 60), status=Status.RUNNING)
    assert estimate(spec(), [done("p", 60, method="other"), running], FAST, CONFIG) is None
