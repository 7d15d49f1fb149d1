"""Archived phases, decided purely (``reconciler.plan.archive``, ``reconciler.model.archive``)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import pytest

from reconciler.model.archive import ArchivedPhase, archive_path, spec_digest
from reconciler.model.decisions import Decision, DecisionAction
from reconciler.model.desired import DesiredState
from reconciler.model.escalation import Escalation
from reconciler.model.observed import ObservedState
from reconciler.model.status import Attempt, StateFile, Status, StatusEntry
from reconciler.plan import make_plan
from reconciler.plan.archive import archive, live_desired, restored, to_restore, unplaced_decisions
from reconciler.plan.entries import new_entry
from tests.plan.builders import config, spec

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
LONG_AGO = "2026-12-01T10:00:00+00:00"


def world(after: float | None = 24.0) -> DesiredState:
    cfg = config(
        {"targets": [{"name": "local", "root": "/tmp/r", "max_runs": 1}], "policies": {"archive_after_hours": after}}
    )
    specs = [spec({"id": f"old_s{i}", "base_id": "old", "seed": i, "phase": "p1"}) for i in range(3)]
    specs += [spec({"id": "new_s0", "base_id": "new", "seed": 0, "phase": "p2", "stage": 2})]
    return DesiredState(config=cfg, experiments=tuple(sorted(specs, key=lambda s: s.id)))


def ended(desired: DesiredState, exp_id: str, status: Status = Status.DONE, when: str = LONG_AGO) -> StatusEntry:
    base = new_entry(desired.by_id()[exp_id], desired.config.policies)
    attempt = Attempt(1, "local", base.command, f"runs/{exp_id}/1", "t", exit_code=0, finished=when)
    return dataclasses.replace(base, status=status, attempt=1, attempts=(attempt,), target="local", finished=when)


def state_of(*entries: StatusEntry) -> StateFile:
    return StateFile(project="proj", entries=tuple(sorted(entries, key=lambda e: e.id)))


def test_a_phase_that_ended_long_enough_ago_moves_out_with_its_record() -> None:
    desired = world()
    pending = new_entry(desired.by_id()["new_s0"], desired.config.policies)
    state = state_of(*(ended(desired, f"old_s{i}") for i in range(3)), pending)
    left, moved = archive(state, desired, NOW)
    assert [e.id for e in left.entries] == ["new_s0"]
    assert list(moved) == ["p1"] and [e.id for e in moved["p1"].entries] == ["old_s0", "old_s1", "old_s2"]
    (record,) = left.archived
    assert (record.phase, record.experiments, record.counts) == ("p1", 3, (("done", 3),))
    assert [(s.stage, s.members, s.settled, s.stopped) for s in record.stages] == [(1, 3, 3, 0)]
    assert record.digest == spec_digest([s for s in desired.experiments if s.phase == "p1"], desired.config.policies)
    # the record survives the state file's own round trip, and nothing needs it back
    again = StateFile.loads(left.dumps())
    assert again.archived == left.archived
    assert to_restore(desired, again) == {}
    assert [s.id for s in live_desired(desired, again).experiments] == ["new_s0"]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ("too recent", "ended 1 h ago, policy 24 h"),
        ("one still running", "a live run"),
        ("open escalation", "a person must look at it first"),
        ("never", "archive_after_hours: null"),
        ("decision pending", "a decision names it"),
    ],
)
def test_a_phase_stays_when(change: str, why: str) -> None:
    desired = world(after=None if change == "never" else 24.0)
    entries = [ended(desired, f"old_s{i}") for i in range(3)]
    if change == "too recent":
        entries[0] = ended(desired, "old_s0", when=(NOW - timedelta(hours=1)).isoformat())
    elif change == "one still running":
        entries[0] = dataclasses.replace(entries[0], status=Status.RUNNING, finished=None)
    elif change == "open escalation":
        entries[0] = dataclasses.replace(entries[0], escalation=Escalation("boom", LONG_AGO, "retry it"))
    elif change == "decision pending":
        decision = Decision("d1", DecisionAction.RETRY, exp="old_s1")
        desired = dataclasses.replace(desired, decisions=(decision,))
    left, moved = archive(state_of(*entries), desired, NOW)
    assert moved == {}, why
    assert left.archived == ()


def archived_world() -> tuple[DesiredState, StateFile]:
    desired = world(after=0)
    state, _moved = archive(state_of(*(ended(desired, f"old_s{i}") for i in range(3))), desired, NOW)
    return desired, state


def test_a_changed_spec_an_added_seed_or_changed_policies_bring_the_phase_back() -> None:
    desired, state = archived_world()
    assert to_restore(desired, state) == {}
    # a spec field that sync copies (the description) changes
    changed = tuple(dataclasses.replace(s, description="v2") if s.id == "old_s1" else s for s in desired.experiments)
    assert "p1" in to_restore(dataclasses.replace(desired, experiments=changed), state)
    # a seed added to the phase
    extra = spec({"id": "old_s3", "base_id": "old", "seed": 3, "phase": "p1"})
    assert "p1" in to_restore(dataclasses.replace(desired, experiments=(*desired.experiments, extra)), state)
    # the policies the entries were synced under
    policies = dataclasses.replace(desired.config.policies, max_retries=7)
    other = dataclasses.replace(desired, config=dataclasses.replace(desired.config, policies=policies))
    assert "p1" in to_restore(other, state)
    # where a spec sits in its file is not a change
    moved_line = tuple(dataclasses.replace(s, source="dispatch/x.yaml:99") for s in desired.experiments)
    assert to_restore(dataclasses.replace(desired, experiments=moved_line), state) == {}


def test_a_decision_or_a_live_entry_brings_the_phase_back_and_the_live_entry_wins() -> None:
    desired, state = archived_world()
    decided = dataclasses.replace(desired, decisions=(Decision("d1", DecisionAction.RETRY, exp="old_s2"),))
    assert to_restore(decided, state) == {"p1": "a decision names old_s2"}
    applied = dataclasses.replace(state, decisions_applied=("d1",))
    assert to_restore(decided, applied) == {}
    # a decision about an id in no spec: only the archive files can tell
    gone = dataclasses.replace(desired, experiments=(), decisions=(Decision("d2", DecisionAction.FAIL, exp="old_s0"),))
    assert unplaced_decisions(gone, state) == {"old_s0"}
    # a killed pass left old_s0 in both places: the phase comes back, the live entry wins
    live = dataclasses.replace(ended(desired, "old_s0"), notes="the newest")
    both = dataclasses.replace(state, entries=(live,))
    assert "p1" in to_restore(desired, both)
    archived_entries = (ended(desired, "old_s0"), ended(desired, "old_s1"), ended(desired, "old_s2"))
    back = restored(both, {"p1": archived_entries})
    assert [e.id for e in back.entries] == ["old_s0", "old_s1", "old_s2"]
    assert back.get("old_s0") == live and back.archived == ()


def test_the_stage_gate_counts_an_archived_phase_failed_experiments() -> None:
    desired = world(after=0)
    entries = [ended(desired, "old_s0", Status.FAILED), ended(desired, "old_s1"), ended(desired, "old_s2")]
    pending = new_entry(desired.by_id()["new_s0"], desired.config.policies)
    observed = ObservedState(targets={})
    before = make_plan(desired, state_of(*entries, pending), observed, NOW)
    state, moved = archive(state_of(*entries, pending), desired, NOW)
    assert list(moved) == ["p1"]
    after = make_plan(live_desired(desired, state), state, observed, NOW)
    why = "stage 1 has 1 failed or held experiment(s); approve stage 2 to go on"
    assert before.state.get("new_s0").waiting_reason == why  # type: ignore[union-attr]
    assert after.state.get("new_s0").waiting_reason == why  # type: ignore[union-attr]
    assert after.state.archived == state.archived


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        ("pilot", "dispatch/archive/pilot.json"),
        ("Phase 4", None),
        ("../../etc", None),
        ("index", None),
        ("state", None),
        ("phase.", None),
        ("é", None),
    ],
)
def test_the_archive_file_is_named_by_the_phase_and_stays_in_the_archive_dir(phase: str, expected: str | None) -> None:
    path = archive_path(phase)
    if expected is not None:
        assert path == expected
    name = path.removeprefix("dispatch/archive/")
    assert "/" not in name and name.endswith(".json") and not name.startswith(".")
    assert archive_path(phase + " ") != path  # two phases never share a file


def test_a_record_the_reconciler_did_not_write_is_refused() -> None:
    _desired, state = archived_world()
    good = json.loads(state.dumps())
    for bad in ({"counts": {"done": -1}}, {"digest": "../x"}, {"stages": [{"stage": "1"}]}, {"experiments": True}):
        doc = json.loads(json.dumps(good))
        doc["archived"]["p1"].update(bad)
        with pytest.raises(ValueError, match="archived phase"):
            StateFile.loads(json.dumps(doc))
    assert ArchivedPhase.from_dict("p1", good["archived"]["p1"]) == state.archived[0]
