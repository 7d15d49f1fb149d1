"""The repair ladder in the plan: a check carries it when the target allows it and none ran for the
commit and env settings; a later check carries the record instead (once per commit)."""

from __future__ import annotations

import dataclasses

from reconciler.model.config import EnvActivation, EnvRepair, Policies, Target, TargetKind
from reconciler.model.env import ENV_FAILED, EnvVerdict, RepairRecord, env_hash
from reconciler.plan.envcheck import check_env_action

REPAIR = EnvRepair(commands=("pip install -r requirements.txt",), timeout_seconds=60.0)


def _target(repair: EnvRepair | None) -> Target:
    return Target(name="lab", kind=TargetKind.LOCAL, root="/r", env=EnvActivation(venv=".venv", repair=repair))


def _failed(target: Target, commit: str, record: RepairRecord | None) -> EnvVerdict:
    return EnvVerdict("lab", ENV_FAILED, commit, "2026-12-06T00:00:00+00:00", env_hash(target), repair=record)


def test_the_check_carries_the_ladder_until_it_ran_for_the_commit() -> None:
    target = _target(REPAIR)
    first = check_env_action(target, Policies(), "/r", "c1")
    assert first.repair == REPAIR and first.repaired is None
    assert "repaired if it fails for a missing env or module" in first.describe()

    record = RepairRecord("c1", env_hash(target), "2026-12-06T00:00:00+00:00", "No module named 'x'")
    again = check_env_action(target, Policies(), "/r", "c1", _failed(target, "c1", record))
    assert again.repair is None and again.repaired == record

    # a new commit, or new env settings, gets the ladder again
    assert check_env_action(target, Policies(), "/r", "c2", _failed(target, "c1", record)).repair == REPAIR
    changed = dataclasses.replace(target, env=dataclasses.replace(target.env, venv=".venv2"))
    assert check_env_action(changed, Policies(), "/r", "c1", _failed(target, "c1", record)).repair == REPAIR


def test_without_env_repair_no_check_repairs() -> None:
    assert check_env_action(_target(None), Policies(), "/r", "c1").repair is None
