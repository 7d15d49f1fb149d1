"""Golden cases for the pure planner: one folder per case under ``cases/`` with ``input.yaml``
(desired, recorded, observed, now) and ``expected.yaml`` (the plan's actions as printed, the
statuses after the plan's records, and the waiting reasons). A mismatch prints a readable diff.

Set ``RECONCILER_REGOLD=1`` to rewrite the expectations after a deliberate change (then review the diff).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.model.actions import Launch
from reconciler.plan import make_plan
from tests.plan import builders

CASES = sorted(p for p in (Path(__file__).parent / "cases").iterdir() if p.is_dir())


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    desired = builders.desired(case)
    project = desired.config.project
    plan = make_plan(
        desired,
        builders.recorded(case, project),
        builders.observed(case, project),
        builders.now(case),
        inflight=[tuple(x) for x in case.get("inflight", [])],
        env=builders.env(case, desired),
        results=builders.results(case),
        vram=builders.vram(case),
    )
    out: dict[str, Any] = {
        "actions": [a.describe() for a in plan.io_actions],
        "status": {e.id: e.status.value for e in plan.state.entries},
        "records": [a.describe() for a in plan.actions if a.kind == "record"],
    }
    waiting = {e.id: e.waiting_reason for e in plan.state.entries if e.waiting_reason}
    if waiting:
        out["waiting"] = waiting
    launches = [a for a in plan.io_actions if isinstance(a, Launch)]
    if launches:
        out["commands"] = {a.exp_id: a.command for a in launches}
    durations = {a.exp_id: [a.expected_duration_hours, a.duration_basis] for a in launches if a.duration_basis}
    if durations:
        out["durations"] = durations
    envs = {a.exp_id: dict(a.env) for a in launches if a.env}
    if envs:
        out["env"] = envs
    if plan.learned:
        out["learned"] = [{k: v for k, v in m.to_dict().items() if k != "measured_at"} for m in plan.learned]
    extra = case.get("show", [])
    for field in extra:
        out.setdefault("fields", {})[field] = {e.id: _plain(getattr(e, field)) for e in plan.state.entries}
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "value"):
        return value.value
    return value


@pytest.mark.parametrize("folder", CASES, ids=[c.name for c in CASES])
def test_golden(folder: Path) -> None:
    case = yaml.safe_load((folder / "input.yaml").read_text())
    got = run_case(case)
    expected_file = folder / "expected.yaml"
    if os.environ.get("RECONCILER_REGOLD") or not expected_file.exists():
        expected_file.write_text(yaml.safe_dump(got, sort_keys=True, width=200))
        if not os.environ.get("RECONCILER_REGOLD"):
            pytest.fail(f"wrote {expected_file}; review it and run again")
    expected = yaml.safe_load(expected_file.read_text())
    assert got == expected, "\n" + yaml.safe_dump({"got": got, "expected": expected}, sort_keys=True, width=200)


def test_plan_is_deterministic() -> None:
    case = yaml.safe_load((CASES[0] / "input.yaml").read_text())
    assert run_case(case) == run_case(case)
