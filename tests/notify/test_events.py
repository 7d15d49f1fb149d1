"""Which transitions are announced, with keys stable across passes."""

from __future__ import annotations

import dataclasses

from reconciler.model.escalation import Escalation
from reconciler.model.status import StateFile, Status, StatusEntry
from reconciler.notify.events import notifications


def state(*entries: StatusEntry) -> StateFile:
    return StateFile(project="demo").with_entries(entries)


def e(exp_id: str, status: Status, stage: int = 1, group: str = "main", **kw: object) -> StatusEntry:
    return StatusEntry(id=exp_id, status=status, phase="pilot", stage=stage, group=group, **kw)  # type: ignore[arg-type]


ESC = Escalation("cuda_oom on attempt 3 of 3", "2026-11-26T10:00:00+00:00", "retry, or fail")


def test_escalation_opened_once() -> None:
    before = state(e("a_s0", Status.RUNNING), e("b_s0", Status.RUNNING, stage=2))
    after = state(
        e("a_s0", Status.FAILED, escalation=ESC, failure_class="cuda_oom"), e("b_s0", Status.RUNNING, stage=2)
    )
    (n,) = notifications(before, after, events=["escalation"])
    assert n.key == "escalation:a_s0:2026-11-26T10:00:00+00:00" and n.event == "escalation"
    assert "[demo] a_s0 needs a decision: cuda_oom on attempt 3 of 3" in n.text
    assert "progress/escalate_a_s0.md" in n.text
    assert notifications(after, after) == []  # the next pass: nothing new
    closed = state(e("a_s0", Status.PENDING, escalation=ESC.close("retry", "t")), e("b_s0", Status.RUNNING, stage=2))
    assert notifications(after, closed, events=["escalation"]) == []


def test_stage_then_phase_done() -> None:
    running = state(e("a_s0", Status.RUNNING), e("a_s1", Status.DONE), e("b_s0", Status.PENDING, stage=2))
    stage1 = state(e("a_s0", Status.DONE), e("a_s1", Status.DONE), e("b_s0", Status.RUNNING, stage=2))
    (n,) = notifications(running, stage1)
    assert (n.key, n.event) == ("stage_done:pilot:1:2", "stage_done")
    assert n.text == "✅ [demo] Stage 1 of phase pilot done: 2 done."
    final = state(e("a_s0", Status.DONE), e("a_s1", Status.DONE), e("b_s0", Status.CANCELLED, stage=2))
    keys = [n.key for n in notifications(stage1, final)]
    assert keys == ["stage_done:pilot:2:1", "phase_done:pilot:3"]
    assert notifications(final, final) == []


def test_single_stage_phase_says_phase_done_only() -> None:
    before = state(e("a_s0", Status.RUNNING))
    after = state(e("a_s0", Status.DONE))
    assert [n.key for n in notifications(before, after)] == ["phase_done:pilot:1"]


def test_failure_rate_above_half() -> None:
    runs = [e(f"m_s{i}", Status.RUNNING) for i in range(4)]
    half = state(
        *[
            dataclasses.replace(r, status=Status.FAILED, failure_class="cuda_oom") if i < 2 else r
            for i, r in enumerate(runs)
        ]
    )
    assert [n.event for n in notifications(state(*runs), half)] == []  # 50 % is not above 50 %
    more = state(
        *[
            dataclasses.replace(r, status=Status.FAILED, failure_class="cuda_oom") if i < 3 else r
            for i, r in enumerate(runs)
        ]
    )
    (n,) = notifications(half, more)
    assert n.key == "failure_rate:pilot:main"
    assert "3 of 4 main experiments of phase pilot failed (75%). Causes: cuda_oom x3." in n.text
    assert notifications(more, more) == []
    assert notifications(half, more, threshold=0.8) == []
