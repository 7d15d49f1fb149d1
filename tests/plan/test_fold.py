"""``fold``: what applied actions make of the planned state (pure)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from reconciler.model.actions import ActionResult, Collect, Collected, Kill, Launch, Started
from reconciler.model.config import Policies
from reconciler.model.status import Attempt, StateFile, Status, StatusEntry
from reconciler.plan import entries, fold, make_plan, outcomes
from tests.plan import builders

CASES = Path(__file__).parent / "cases"


def planned(case_name: str):  # type: ignore[no-untyped-def]
    case = yaml.safe_load((CASES / case_name / "input.yaml").read_text())
    desired = builders.desired(case)
    project = desired.config.project
    plan = make_plan(desired, builders.recorded(case, project), builders.observed(case, project), builders.now(case))
    return desired, plan, builders.now(case)


def test_a_verified_restart_kill_pends_with_the_new_command_and_no_retry_counted() -> None:
    desired, plan, now = planned("25_restart_on_spec_change")
    (kill,) = [a for a in plan.actions if isinstance(a, Kill)]
    state = fold(plan, [ActionResult(kill, True, "gone")], desired, now)
    (entry,) = state.entries
    assert entry.status is Status.PENDING
    assert entry.command == "python3 train.py --lr 0.1"
    assert entry.retry_count == 0
    assert entry.attempts[0].failure_class == "restarted"


def test_an_unverified_kill_changes_no_status() -> None:
    desired, plan, now = planned("25_restart_on_spec_change")
    (kill,) = [a for a in plan.actions if isinstance(a, Kill)]
    state = fold(plan, [ActionResult(kill, False, "still running", temporary=True)], desired, now)
    assert state.entries[0].status is Status.RUNNING


def test_a_launch_that_answered_is_running_and_one_that_did_not_is_unreachable() -> None:
    desired, plan, now = planned("01_fresh_launch")
    first, second = [a for a in plan.actions if isinstance(a, Launch)]
    state = fold(
        plan,
        [
            ActionResult(first, True, "started", outcome=Started(host="vm", pid=42, start_time="7")),
            ActionResult(second, False, "connection lost", temporary=True),
        ],
        desired,
        now,
    )
    by_id = state.by_id()
    assert (by_id["a_s0"].status, by_id["a_s0"].pid, by_id["a_s0"].host) == (Status.RUNNING, 42, "local")
    assert by_id["a_s0"].current is not None and by_id["a_s0"].current.host == "vm"  # the machine's own name
    assert by_id["a_s1"].status is Status.UNREACHABLE  # unknown: the next probe settles it, never a 2nd launch
    assert by_id["a_s1"].attempt == 1


def test_done_keeps_an_open_artifact_escalation() -> None:
    """The run finished, but its checkpoint upload failed: that problem is still open."""
    from datetime import datetime, timezone

    from reconciler.model.escalation import Escalation
    from reconciler.model.status import StatusEntry
    from reconciler.plan import outcomes

    now = datetime(2026, 11, 26, tzinfo=timezone.utc)
    artifact = Escalation(reason="upload failed", created="2026-11-26T00:00:00+00:00", needed="x", kind="artifact")
    timeout = Escalation(reason="slow", created="2026-11-26T00:00:00+00:00", needed="x", kind="slow")
    assert outcomes.done(StatusEntry(id="a"), now).escalation is None
    assert outcomes.done(StatusEntry(id="a", escalation=artifact), now).escalation == artifact
    closed = outcomes.done(StatusEntry(id="a", escalation=timeout), now).escalation
    assert closed is not None and not closed.open


def test_a_collected_result_gives_the_entry_its_final_metrics() -> None:
    """The seed's ``results`` on a done entry (its dashboard reads them): each metric's mean over the
    result file's rows; a later attempt starts without them."""
    desired, plan, now = planned("05_exit_zero_collects")
    (collect,) = [a for a in plan.actions if isinstance(a, Collect)]
    outcome = Collected(rows=4, means=(("accuracy", 0.91), ("loss", 0.25)))
    state = fold(plan, [ActionResult(collect, True, "4 rows", outcome=outcome)], desired, now)
    (entry,) = state.entries
    assert entry.status is Status.DONE
    assert entry.to_dict()["results"] == {"accuracy": 0.91, "loss": 0.25}
    assert StateFile.loads(state.dumps()).entries[0].results == (("accuracy", 0.91), ("loss", 0.25))
    relaunched = outcomes.started(entry, Attempt(n=2, target="local", command="x", run_dir="r", token="t"), now)
    assert relaunched.results == () and "results" not in relaunched.to_dict()


def test_a_seed_results_field_that_is_not_metrics_is_kept_as_it_was() -> None:
    text = '{"project": "p", "experiments": [{"id": "a", "status": "done", "results": {"acc": "91.2%"}}]}'
    entry = StateFile.loads(text).entries[0]
    assert entry.results == ()
    assert entry.to_dict()["results"] == {"acc": "91.2%"}


def test_the_specs_description_is_on_the_entry_and_a_seeds_object_is_kept() -> None:
    desired, _, _ = planned("01_fresh_launch")
    spec = desired.experiments[0]
    synced = entries.sync(StatusEntry(id=spec.id), dataclasses.replace(spec, description="ours"), Policies(), "")
    assert synced.to_dict()["description"] == "ours"
    assert "description" not in StatusEntry(id="a").to_dict()  # written only when there is one
    text = '{"project": "p", "experiments": [{"id": "a", "description": {"lr": 0.1}}]}'
    entry = StateFile.loads(text).entries[0]
    assert entry.description == "" and entry.to_dict()["description"] == {"lr": 0.1}
