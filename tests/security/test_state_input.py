"""A hostile ``dispatch/state.json`` (issue 15, item 6): whatever bytes it holds, a pass reports it
corrupt, restores it from the last commit and goes on; nothing raises a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.load.state import CorruptStateError, parse_state
from reconciler.model.status import StateFile
from tests.engine.project import git, make_project, reconcile

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

STATE = "dispatch/state.json"
HOSTILE: dict[str, bytes] = {
    "deep_lists": b"[" * 200_000,
    "deep_objects": b'{"a":' * 100_000,
    "overflow": b'{"version": 1, "project": "enginetest", "experiments": [], "x": 1e999}',
    "nan": b'{"version": 1, "project": "enginetest", "experiments": [{"id": "job_s0", "started": NaN}]}',
    "infinity": b'{"version": 1, "project": "enginetest", "experiments": [], "updated": -Infinity}',
    "huge_int": b'{"version": 1' + b"0" * 5000 + b', "project": "enginetest", "experiments": []}',
    "not_utf8": b'{"version": 1, "project": "\xff\xfe", "experiments": []}',
    "not_an_object": b"[]",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_state_readers_call_hostile_bytes_corrupt(name: str) -> None:
    raw = HOSTILE[name]
    with pytest.raises(ValueError, match=r"JSON|finite|UTF-8|object"):
        StateFile.loads(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return  # the tree reader reports undecodable files as unreadable before parse_state
    with pytest.raises(CorruptStateError):
        parse_state(text)


@pytest.fixture(scope="module")
def settled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = make_project(tmp_path_factory.mktemp("state"), seeds=1)
    first = reconcile(project, "--once")
    assert first.returncode in (0, 1), first.stderr
    assert json.loads((project / STATE).read_text())["experiments"]
    return project


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_corrupt_working_tree_state_is_restored_from_the_last_commit(settled: Path, name: str) -> None:
    project = settled
    committed = StateFile.loads(git(project, "show", f"HEAD:{STATE}"))
    (project / STATE).write_bytes(HOSTILE[name])
    ran = reconcile(project, "--once")
    assert "Traceback" not in ran.stderr, ran.stderr
    assert ran.returncode in (0, 1), ran.stderr
    assert f"{STATE} is corrupt" in ran.stderr
    assert "restored from the last commit" in ran.stderr
    restored = StateFile.loads((project / STATE).read_bytes())
    assert [e.id for e in restored.entries] == [e.id for e in committed.entries]


def test_status_of_a_corrupt_committed_state_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    (project / STATE).write_bytes(HOSTILE["deep_lists"])
    git(project, "add", STATE)
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "hostile state")
    shown = reconcile(project, "status", "-C", str(project))
    assert "Traceback" not in shown.stderr, shown.stderr
    assert shown.returncode == 1
    assert f"error: {STATE} at HEAD is corrupt (invalid JSON: nested too deeply)" in shown.stderr


@pytest.mark.parametrize("path", ["progress/env_local.json", "progress/notifications.json"])
def test_a_hostile_committed_progress_file_does_not_stop_the_pass(tmp_path: Path, path: str) -> None:
    project = make_project(tmp_path, seeds=1)
    (project / path).parent.mkdir(exist_ok=True)
    (project / path).write_bytes(HOSTILE["deep_lists"])
    git(project, "add", path)
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "hostile progress file")
    ran = reconcile(project, "--once")
    assert "Traceback" not in ran.stderr, ran.stderr
    assert ran.returncode in (0, 1), ran.stderr
    assert json.loads((project / STATE).read_text())["experiments"]  # the pass went on and recorded the run
