"""``dispatch/state.json`` round trips exactly, and loading builds the same values as the
dataclasses' own constructors (``status._build`` skips their generated ``__init__``)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from reconciler.model.escalation import Escalation
from reconciler.model.status import Attempt, Condition, StateFile, Status, StatusEntry, Unreachable


def _full_entry() -> StatusEntry:
    attempt = Attempt(
        n=2, target="lab1", command="python train.py", run_dir="/r/runs/a_s0/2", token="t0k",
        host="lab1", gpus=(0, 3), pid=4242, start_time="1234", job_id=None, started="2026-11-26T10:00:00Z",
        finished="2026-11-26T11:00:00Z", exit_code=0, git_commit="abc123", failure_class=None,
        evidence=("line 1", "line 2"), env=(("CUDA_VISIBLE_DEVICES", "0,3"), ("SEED", "0")),
    )  # fmt: skip
    return StatusEntry(
        id="a_s0", status=Status.DONE, command="python train.py", phase="pilot", method="ours", dataset="d",
        seed=0, stage=2, priority=50, expected_duration_hours=1.5, duration_basis="pilot", host="lab1", gpu=0,
        pid=4242, started="2026-11-26T10:00:00Z", finished="2026-11-26T11:00:00Z", retry_count=1,
        notes="done", result_file="experiments/results/a_s0.csv", target="lab1", attempt=2,
        attempts=(Attempt(n=1, target="lab0", command="c", run_dir="/r/runs/a_s0/1", token="x"), attempt),
        spec_hash="h", conditions=(Condition("Ready", True, "Done", "ok", "2026-11-26T11:00:00Z"),),
        unreachable=Unreachable(consecutive=0, total=2, probes=9),
        escalation=Escalation(reason="slow", created="2026-11-26T10:30:00Z", needed="look", kind="duration"),
        sidecar=(("final_acc", 0.9),), extra=(("wandb_artifact", "x:v1"),),
    )  # fmt: skip


def test_a_full_entry_round_trips_to_equal_values() -> None:
    state = StateFile(project="p", entries=(_full_entry(), StatusEntry(id="b_s0")), updated="u", stages_approved=(1,))
    again = StateFile.loads(state.dumps())
    assert again == state
    assert again.dumps() == state.dumps()
    # Defaults are filled in as the constructor fills them, factories called per entry.
    minimal = StateFile.loads(json.dumps({"project": "p", "experiments": [{"id": "c_s0"}, {"id": "d_s0"}]}))
    assert minimal.entries[0] == StatusEntry(id="c_s0")
    assert minimal.entries[0].unreachable == Unreachable()
    assert minimal.entries[0].status is Status.PENDING


def test_loaded_values_behave_like_constructed_ones() -> None:
    loaded = StateFile.loads(StateFile(project="p", entries=(_full_entry(),)).dumps()).entries[0]
    built = _full_entry()
    assert hash(loaded.attempts[1]) == hash(built.attempts[1])
    assert dataclasses.replace(loaded, notes="x") == dataclasses.replace(built, notes="x")
    assert loaded.current == built.current
    with pytest.raises(AttributeError):
        loaded.notes = "changed"  # type: ignore[misc]


def test_an_entry_without_an_id_is_refused() -> None:
    with pytest.raises(TypeError, match="id"):
        StatusEntry.from_dict({"status": "done"})
    with pytest.raises(TypeError, match="run_dir"):
        Attempt.from_dict({"n": 1, "target": "t", "command": "c", "token": "x"})


def test_the_document_written_builds_what_loading_the_text_gives() -> None:
    """A pass keeps ``from_dict`` of the document it wrote as the next pass's parse
    (``loadcache.remember_state``): it must equal loading the text, NaN in a sidecar included."""
    odd = StatusEntry(id="n_s0", sidecar=(("loss", float("nan")), ("acc", 0.25)), results=(("acc", 0.5),))
    state = StateFile(project="p", entries=(_full_entry(), odd, StatusEntry(id="b_s0")), updated="u")
    text, data = state.encoded()
    assert text == state.dumps()
    assert StateFile.from_dict(data) == StateFile.loads(text)
    assert StateFile.loads(text).get("n_s0").sidecar == (("acc", 0.25), ("loss", None))  # type: ignore[union-attr]
    # one experiment per line: a commit's diff shows exactly the experiments it changed
    lines = text.splitlines()
    assert sum(1 for line in lines if line.startswith('    {"attempt"')) == 3
