"""Runs the seed started (``origin: seed``) in the planner: where their results are collected from
and how they are stopped (the golden cases 42-44 hold the transitions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from reconciler.model.actions import Collect, Kill
from reconciler.plan import make_plan
from tests.plan import builders

CASES = Path(__file__).parent / "cases"


def plan_of(name: str) -> Any:
    case = yaml.safe_load((CASES / name / "input.yaml").read_text())
    desired = builders.desired(case)
    project = desired.config.project
    return make_plan(desired, builders.recorded(case, project), builders.observed(case, project), builders.now(case))


def test_results_are_collected_from_the_seeds_checkout() -> None:
    collects = {a.exp_id: a for a in plan_of("43_seed_runs_end").io_actions if isinstance(a, Collect)}
    assert set(collects) == {"ok", "quiet"}
    for exp_id, action in collects.items():
        assert action.remote_path == f"/home/alice/projects/proj/experiments/results/{exp_id}.csv"
        assert action.local_path == f"experiments/results/{exp_id}.csv"


def test_lost_and_failed_seed_runs_say_why() -> None:
    entries = plan_of("43_seed_runs_end").state.by_id()
    assert entries["lost"].failure_class == "lost"
    assert entries["bad"].attempts[0].exit_code == 3


def test_a_seed_run_is_killed_as_a_process_tree_with_its_start_time() -> None:
    kills = [a for a in plan_of("44_seed_run_over_time_is_killed").io_actions if isinstance(a, Kill)]
    assert len(kills) == 1
    assert kills[0].tree and (kills[0].pid, kills[0].start_time) == (21, "99")
