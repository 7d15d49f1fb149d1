"""``fold``: what applied actions make of the planned state (pure)."""

from __future__ import annotations

from pathlib import Path

import yaml

from reconciler.model.actions import ActionResult, Kill, Launch, Started
from reconciler.model.status import Status
from reconciler.plan import fold, make_plan
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
    assert (by_id["a_s0"].status, by_id["a_s0"].pid, by_id["a_s0"].host) == (Status.RUNNING, 42, "vm")
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
