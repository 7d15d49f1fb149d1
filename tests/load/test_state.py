"""Reading ``dispatch/state.json``: missing is empty, corrupt is an error the engine can catch."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import ReconcilerError
from reconciler.load import CorruptStateError, WorkTree, load_state, parse_state
from reconciler.model.status import Attempt, Condition, StateFile, Status, StatusEntry
from tests.load.project import write_project


def test_missing_state_is_an_empty_state_for_the_project(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"dispatch/state.json": None})
    assert load_state(WorkTree(root), "mini") == StateFile(project="mini")


def test_state_roundtrips_through_the_canonical_text(tmp_path: Path) -> None:
    entry = StatusEntry(
        id="a_s0",
        status=Status.RUNNING,
        seed=0,
        attempt=1,
        attempts=(Attempt(1, "local", "run", "runs/a_s0/1", "tok", gpus=(0,), env=(("A", "1"),)),),
        conditions=(Condition("Ready", False, "Running"),),
        extra=(("wandb_artifact", "x"),),
    )
    state = StateFile(project="mini", entries=(entry,), updated="t", decisions_applied=("d1",), stages_approved=(2,))
    root = write_project(tmp_path, {"dispatch/state.json": state.dumps()})
    assert load_state(WorkTree(root), "mini") == state


def test_seed_state_without_version_and_with_seed_statuses_loads() -> None:
    text = '{"project": "p", "updated": null, "experiments": [{"id": "x_s0", "status": "dead", "notes": ""}]}'
    state = parse_state(text)
    assert state.entries[0].status is Status.FAILED


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{", "dispatch/state.json:1:2: (file): invalid JSON: Expecting property name enclosed in double quotes"),
        ('{"experiments": {}}', "dispatch/state.json:1:2: experiments: a mapping is not of type 'list'"),
        (
            '{"experiments": [{"id": "a", "status": "running", "pid": "12"}]}',
            "dispatch/state.json:1:51: experiments[0].pid: '12' is not of type 'integer'",
        ),
        (
            '{"experiments": [{"id": "a", "status": "done"}, {"id": "a", "status": "done"}]}',
            "experiment ids repeated: a",
        ),
        ("[]", "dispatch/state.json:1:1: (file): a list is not of type 'mapping'"),
    ],
)
def test_corrupt_state_raises_a_catchable_error(tmp_path: Path, text: str, reason: str) -> None:
    root = write_project(tmp_path, {"dispatch/state.json": text})
    with pytest.raises(CorruptStateError) as info:
        load_state(WorkTree(root), "mini")
    assert isinstance(info.value, ReconcilerError)
    assert info.value.path == "dispatch/state.json"
    assert info.value.reason == reason


def test_unreadable_state_is_corrupt(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"dispatch/state.json": None})
    (root / "dispatch/state.json").write_bytes(b'{"experiments": ["\xff"]}')
    with pytest.raises(CorruptStateError, match="not UTF-8"):
        load_state(WorkTree(root), "mini")


def test_a_decision_may_name_an_experiment_of_an_archived_phase(tmp_path: Path) -> None:
    """Its spec gone and its entry in ``dispatch/archive/<phase>.json``: still a recorded id."""
    from reconciler.load import validate
    from reconciler.model.archive import ArchivedPhase

    old = StatusEntry(id="gone_s0", status=Status.DONE, phase="pilot")
    record = ArchivedPhase("pilot", 1, (("done", 1),), (), "0" * 32, "t")
    decisions = "version: 1\ndecisions:\n  - {id: d1, exp: gone_s0, action: retry, reason: again}\n"
    state = StateFile(project="mini", archived=(record,))
    root = write_project(
        tmp_path,
        {
            "dispatch/state.json": state.dumps(),
            "dispatch/archive/pilot.json": StateFile(project="mini", entries=(old,)).dumps(),
            "dispatch/decisions.yaml": decisions,
        },
    )
    assert [str(p) for p in validate(WorkTree(root))] == []
    (root / "dispatch" / "archive" / "pilot.json").unlink()
    assert any("gone_s0" in str(p) for p in validate(WorkTree(root)))
