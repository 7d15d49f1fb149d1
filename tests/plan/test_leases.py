"""GPU leases in the plan: a launch on a target with a lease directory carries its request (the
golden case 45 holds the placement around another project's lease)."""

from __future__ import annotations

from pathlib import Path

import yaml

from reconciler.model.actions import Launch
from reconciler.model.leases import lease_name
from reconciler.plan import make_plan
from tests.plan import builders

CASE = Path(__file__).parent / "cases" / "45_another_projects_lease_holds_its_gpu" / "input.yaml"


def test_each_launch_carries_its_lease_request() -> None:
    case = yaml.safe_load(CASE.read_text())
    desired = builders.desired(case)
    plan = make_plan(desired, builders.recorded(case, "proj"), builders.observed(case, "proj"), builders.now(case))
    launches = {a.exp_id: a for a in plan.io_actions if isinstance(a, Launch)}
    lease = launches["a"].lease
    assert lease is not None
    assert (lease.directory, lease.name, lease.gpus) == ("/tmp/reconciler-leases", lease_name("proj", "a", 1), (1,))
    assert lease.reserved_mb == 30 * 1024 * 1.2
    assert lease.capacity_mb == ((1, 81920.0),)
    assert lease.max_runs == 2


def test_without_a_lease_directory_nothing_is_leased() -> None:
    case = yaml.safe_load(CASE.read_text())
    del case["config"]["targets"][0]["gpus"]["leases"]
    desired = builders.desired(case)
    plan = make_plan(desired, builders.recorded(case, "proj"), builders.observed(case, "proj"), builders.now(case))
    assert all(a.lease is None for a in plan.io_actions if isinstance(a, Launch))
