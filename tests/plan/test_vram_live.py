"""Live GPU memory in the plan (issue 18, item 2): what a live run holds is kept beside its
reservation, a run over it is flagged, and its peak is learned so that the next placements of the
same command reserve it (golden case 46 is the first pass; these follow it)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from reconciler.model.actions import Launch
from reconciler.model.status import StateFile
from reconciler.model.volatile import merge, split
from reconciler.model.vram import OVER, LiveMemory, VramBook
from reconciler.plan import Plan, make_plan
from tests.plan import builders

CASE = Path(__file__).parent / "cases" / "46_run_over_its_reservation_is_flagged_and_learned" / "input.yaml"


def _case() -> dict[str, Any]:
    return yaml.safe_load(CASE.read_text())


def _plan(case: dict[str, Any], book: VramBook | None = None, recorded: StateFile | None = None) -> Plan:
    desired = builders.desired(case)
    return make_plan(
        desired,
        recorded if recorded is not None else builders.recorded(case, "proj"),
        builders.observed(case, "proj"),
        builders.now(case),
        vram=book,
    )


def _launches(plan: Plan) -> dict[str, Launch]:
    return {a.exp_id: a for a in plan.io_actions if isinstance(a, Launch)}


def test_the_next_pass_reserves_the_learned_peak_for_the_same_command() -> None:
    case = _case()
    first = _plan(case)
    (m,) = first.learned
    assert (m.exp_id, m.base_id, m.peak_gb, m.commit, m.source) == ("sweep_s1", "sweep", 14.0, "abc123", "live run 1")
    book = VramBook().add(m)

    # sweep_s2 is placed again from scratch (the first plan's launch never happened)
    second = _plan(case, book)
    launch = _launches(second)["sweep_s2"]
    assert launch.vram_gb == 14.0
    assert (
        launch.vram_source
        == "measured on lab1 (NVIDIA A100-SXM4-80GB) by sweep_s1's live run 1 at abc123, over the spec's 10 GB"
    )
    c = second.state.get("c")  # another command, within its 8 GB: nothing flagged
    assert c is not None and c.condition(OVER) is None


def test_a_learned_peak_is_raised_only_when_passed_by_five_percent() -> None:
    case = _case()
    (m,) = _plan(case).learned
    book = VramBook().add(m)
    assert _plan(case, book).learned == ()  # the same 14 GB: nothing new to record
    gpu0 = case["observed"]["lab1"]["gpus"][0]
    gpu0["processes"] = [[501, 12288 + 512], [502, 2048], [900, 3072]]  # 14.5 GB: within 5 %
    assert _plan(case, book).learned == ()
    gpu0["processes"] = [[501, 14336], [502, 2048], [900, 3072]]  # 16 GB
    (raised,) = _plan(case, book).learned
    assert raised.peak_gb == 16.0


def test_a_run_within_its_reservation_is_shown_not_flagged() -> None:
    case = _case()
    plan = _plan(case)
    c = plan.state.get("c")
    assert c is not None and c.gpu_memory == LiveMemory(((1, 3072.0),), 3072.0, 8192.0, "2026-11-26T12:00:00+00:00")
    assert not c.gpu_memory.over and c.condition(OVER) is None
    assert c.gpu_memory.describe() == "3.0 GB now, peak 3.0 of 8 GB reserved"


def test_the_peak_is_kept_across_passes_and_memory_alone_commits_nothing() -> None:
    case = _case()
    first = _plan(case)
    committed, newest = split(builders.recorded(case, "proj"), first.state, fold_progress=False)
    # the flag is a transition: committed, with the memory folded in
    s1 = committed.get("sweep_s1")
    assert s1 is not None and s1.condition(OVER) is not None and s1.gpu_memory is not None

    # the next pass reads them merged; c's job freed memory: its peak stays, and a change of the
    # live numbers alone is kept in .reconciler/ (newest), not committed
    case["observed"]["lab1"]["gpus"][1]["processes"] = [[601, 1024]]
    second = _plan(case, recorded=merge(committed, newest))
    c = second.state.get("c")
    assert c is not None and c.gpu_memory is not None
    assert (c.gpu_memory.now_mb, c.gpu_memory.peak_mb) == (1024.0, 3072.0)
    assert c.gpu_memory.at == "2026-11-26T12:00:00+00:00"
    committed2, newest2 = split(committed, second.state, fold_progress=False)
    assert committed2.get("c") == committed.get("c")
    assert newest2["c"][1]["gpu_memory"]["gpus"] == [[1, 1024.0]]


def test_live_memory_round_trips_through_the_state_file_and_bad_values_are_dropped() -> None:
    case = _case()
    state = _plan(case).state
    again = StateFile.loads(state.dumps())
    assert again.get("sweep_s1") == state.get("sweep_s1")
    text = state.dumps().replace('"peak_mb": 14336', '"peak_mb": "lots"')
    hand_edited = StateFile.loads(text).get("sweep_s1")
    assert hand_edited is not None and hand_edited.gpu_memory is None
    pending = StateFile.loads(state.dumps()).get("sweep_s2")
    assert pending is not None and "gpu_memory" not in pending.to_dict()


def test_a_new_attempt_starts_with_no_memory_and_no_flag() -> None:
    case = _case()
    state = _plan(case).state
    s1 = state.get("sweep_s1")
    assert s1 is not None and s1.current is not None
    from reconciler.plan import outcomes

    nxt = dataclasses.replace(s1.current, n=2, run_dir="/r/lab1/runs/sweep_s1/2", pid=None, start_time=None)
    restarted = outcomes.started(s1, nxt, builders.now(case))
    assert restarted.gpu_memory is None and restarted.condition(OVER) is None
