"""A hostile ``dispatch/state.json`` is validated like the spec (issue 15, item 5).

An entry whose id is ``../../../outside/ESC``, a ``result_file`` that is an absolute path, a run dir
outside ``<root>/runs/<id>/<n>``: the state is corrupt, it is restored from the last good commit
(walking back past committed bad versions, and past one that is not UTF-8) with a warning, and
nothing is written outside the project."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from reconciler.load.state import CorruptStateError, parse_state
from reconciler.model.status import StateFile
from tests.engine.project import git, launches, make_project, reconcile, until

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

STATE = "dispatch/state.json"


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        Path(top, name).relative_to(directory).as_posix(): Path(top, name).read_bytes()
        for top, _, files in os.walk(directory)
        for name in files
    }


def commit(project: Path, message: str, *paths: str) -> None:
    git(project, "add", *paths)
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", message)


def settled(tmp_path: Path) -> tuple[Path, Path, dict[str, Any]]:
    """A project whose one run is done and committed; an ``outside`` dir beside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.csv").write_text("precious\n")
    project = make_project(tmp_path, seeds=1)
    for _ in range(40):
        ran = reconcile(project, "--once")
        assert ran.returncode in (0, 1), ran.stderr
        state = json.loads((project / STATE).read_text())
        if state["experiments"][0]["status"] == "done":
            return project, outside, state
    raise AssertionError("the run did not finish")


def escaping_entry(state: dict[str, Any]) -> dict[str, Any]:
    """The issue's input: a copy of the done entry, live again, with id ``../../../outside/ESC``."""
    entry = copy.deepcopy(state["experiments"][0])
    entry["id"] = "../../../outside/ESC"
    entry["status"] = "running"
    entry["finished"] = None
    entry["attempts"][0].update(finished=None, exit_code=None)
    entry["attempts"][0]["run_dir"] = entry["attempts"][0]["run_dir"].replace("job_s0", "../../../outside/ESC")
    return entry


def passes_safely(project: Path, outside: Path, before: dict[str, bytes], n: int = 3) -> list[str]:
    """Run ``n`` passes: no traceback, exit 0/1, nothing written outside; their stderr."""
    errors = []
    for _ in range(n):
        ran = reconcile(project, "--once")
        assert "Traceback" not in ran.stderr, ran.stderr
        assert ran.returncode in (0, 1), ran.stderr
        assert snapshot(outside) == before
        errors.append(ran.stderr)
    return errors


def test_an_entry_id_that_climbs_out_of_the_project_is_corrupt(tmp_path: Path) -> None:
    project, outside, state = settled(tmp_path)
    state["experiments"].append(escaping_entry(state))
    (project / STATE).write_text(json.dumps(state))
    before = snapshot(outside)
    stderr = passes_safely(project, outside, before)
    assert f"{STATE} is corrupt" in stderr[0]
    assert "'../../../outside/ESC' is not an experiment id" in stderr[0]
    assert "restored from the last commit" in stderr[0]
    assert not (tmp_path / "outside" / "ESC.md").exists()
    assert [e["id"] for e in json.loads((project / STATE).read_text())["experiments"]] == ["job_s0"]
    assert "outside" not in git(project, "show", f"HEAD:{STATE}")


def test_an_absolute_result_file_in_an_entry_is_never_written(tmp_path: Path) -> None:
    project, outside, state = settled(tmp_path)
    victim = outside / "victim.csv"
    live = copy.deepcopy(state)
    entry = live["experiments"][0]
    entry.update(status="running", finished=None, result_file=str(victim))
    entry["attempts"][0].update(finished=None, exit_code=None)
    (project / STATE).write_text(json.dumps(live))
    before = snapshot(outside)
    stderr = passes_safely(project, outside, before)
    assert f"{STATE} is corrupt" in stderr[0]
    assert f"result_file: '{victim}' must be a relative path inside the project" in stderr[0]
    assert victim.read_text() == "precious\n"
    assert json.loads((project / STATE).read_text())["experiments"][0]["result_file"] == (
        "experiments/results/job_s0.csv"
    )


def test_a_committed_bad_state_is_walked_past_to_the_last_good_commit(tmp_path: Path) -> None:
    project, outside, state = settled(tmp_path)
    good = git(project, "rev-parse", "--short=10", "HEAD")
    hostile = copy.deepcopy(state)
    hostile["experiments"].append(escaping_entry(state))
    (project / STATE).write_text(json.dumps(hostile))
    commit(project, "hostile state", STATE)
    before = snapshot(outside)
    stderr = passes_safely(project, outside, before)
    assert f"restored from {good}" in stderr[0], stderr[0]
    assert "Warning" not in stderr[1] and "corrupt" not in stderr[1]  # the restore was committed
    shown = json.loads(git(project, "show", f"HEAD:{STATE}"))
    assert [e["id"] for e in shown["experiments"]] == ["job_s0"]
    assert shown["experiments"][0]["status"] == "done"


def test_a_committed_state_that_is_not_utf8_is_restored_not_fatal(tmp_path: Path) -> None:
    project, outside, _ = settled(tmp_path)
    (project / STATE).write_bytes(b'{"version": 1, "project": "\xff\xfe", "experiments": []}')
    commit(project, "state that is not UTF-8", STATE)
    stderr = passes_safely(project, outside, snapshot(outside), n=2)
    assert f"{STATE} is corrupt" in stderr[0], stderr[0]
    assert "restored from" in stderr[0]
    assert "corrupt" not in stderr[1]
    shown = json.loads(git(project, "show", f"HEAD:{STATE}"))
    assert [e["id"] for e in shown["experiments"]] == ["job_s0"]


RUN_DIR = "/srv/lab/runs/job_s0/1"


def one_entry(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "job_s0",
        "status": "running",
        "target": "gpu1",
        "result_file": "experiments/results/job_s0.csv",
        "attempt": 1,
        "attempts": [{"n": 1, "target": "gpu1", "command": "x", "run_dir": RUN_DIR, "token": "ab"}],
    }
    attempt = changes.pop("attempt_changes", {})
    entry.update(changes)
    entry["attempts"][0].update(attempt)
    return {"version": 1, "project": "p", "experiments": [entry]}


HOSTILE_STATES = {
    "id climbing out": one_entry(id="../../../outside/ESC"),
    "id with a newline": one_entry(id="abc\n"),
    "absolute result_file": one_entry(result_file="/home/me/.bashrc"),
    "result_file a dotfile": one_entry(result_file=".gitignore"),
    "result_file under .reconciler": one_entry(result_file=".reconciler/lock"),
    "result_file climbing": one_entry(result_file="experiments/results/../../../x.csv"),
    "run dir of another id": one_entry(attempt_changes={"run_dir": "/srv/lab/runs/other_s0/1"}),
    "run dir climbing": one_entry(attempt_changes={"run_dir": "/srv/lab/../../etc/runs/job_s0/1"}),
    "run dir not a run dir": one_entry(attempt_changes={"run_dir": "/home/me"}),
    "attempt number 0": one_entry(attempt_changes={"n": 0, "run_dir": "/srv/lab/runs/job_s0/0"}),
    "decision id with a slash": {**one_entry(), "decisions_applied": ["../x"]},
}


@pytest.mark.parametrize("name", sorted(HOSTILE_STATES))
def test_the_state_readers_refuse_what_the_reconciler_never_writes(name: str) -> None:
    text = json.dumps(HOSTILE_STATES[name])
    with pytest.raises(ValueError, match=r"not|must|names|holds|count|escapes"):
        StateFile.loads(text)
    with pytest.raises(CorruptStateError):
        parse_state(text)


def test_what_the_reconciler_writes_reads_back() -> None:
    text = json.dumps(one_entry())
    assert StateFile.loads(text).entries[0].id == "job_s0"
    assert parse_state(text).entries[0].attempts[0].run_dir == RUN_DIR
    relative = one_entry(attempt_changes={"run_dir": ".reconciler/runs-local/runs/job_s0/1"})
    assert StateFile.loads(json.dumps(relative)).entries[0].attempts[0].run_dir.startswith(".reconciler/")


def _failed(project: Path) -> bool:
    path = project / STATE
    return path.exists() and bool(json.loads(path.read_text())["experiments"][0]["status"] == "failed")


@pytest.mark.parametrize("committed", [True, False])
def test_a_decision_removed_from_decisions_applied_is_not_replayed(tmp_path: Path, committed: bool) -> None:
    """The issue's input: the retry decision's id deleted from ``decisions_applied`` (committed, or
    only in the working tree). History says it was carried out: no fourth launch."""
    project = make_project(tmp_path, seeds=1, fail=3)
    until(lambda: _failed(project), step=lambda: reconcile(project, "--once"))
    out = reconcile(project, "resolve", "-C", str(project), "job_s0", "--retry", "--note", "flaky node")
    assert out.returncode == 0, out.stderr
    until(lambda: json.loads((project / STATE).read_text())["experiments"][0]["attempt"] == 3,
          step=lambda: reconcile(project, "--once"))  # fmt: skip
    until(lambda: _failed(project), step=lambda: reconcile(project, "--once"))
    assert launches(project) == ["job_s0"] * 3
    state = json.loads((project / STATE).read_text())
    (decision,) = state["decisions_applied"]
    state["decisions_applied"] = []
    (project / STATE).write_text(json.dumps(state, indent=2))
    if committed:
        commit(project, "forget the decision", STATE)
    stderr = [reconcile(project, "--once").stderr for _ in range(3)]
    assert launches(project) == ["job_s0"] * 3  # not replayed
    assert f"decision {decision} was carried out before" in stderr[0], stderr[0]
    assert "not carried out again" in stderr[0]
    assert "Traceback" not in "".join(stderr)
    assert json.loads(git(project, "show", f"HEAD:{STATE}"))["decisions_applied"] == [decision]
    assert "was carried out before" not in stderr[2]  # recorded again: no more warnings
    assert _failed(project)


def test_a_committed_state_that_is_not_utf8_beside_decisions_is_restored(tmp_path: Path) -> None:
    """The decisions' check reads the recorded ids too: it used to stop the pass there."""
    project, outside, _ = settled(tmp_path)
    (project / "dispatch" / "decisions.yaml").write_text(
        "version: 1\ndecisions:\n  - {id: d1, exp: job_s0, action: continue, reason: fine}\n"
    )
    (project / STATE).write_bytes(b'{"version": 1, "project": "\xff\xfe", "experiments": []}')
    commit(project, "state that is not UTF-8", STATE, "dispatch/decisions.yaml")
    stderr = passes_safely(project, outside, snapshot(outside), n=2)
    assert f"{STATE} is corrupt" in stderr[0], stderr[0]
    assert "corrupt" not in stderr[1]
