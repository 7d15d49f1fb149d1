"""Crash injection: the reconciler dies (``os._exit``) at every named point of a pass; the next
normal passes must launch every experiment exactly once and lose no transition."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from reconciler.crashpoints import CRASH_EXIT_CODE, POINTS
from tests.engine.project import launches, make_project, reconcile, until


def _state(project: Path) -> dict[str, dict[str, object]]:
    path = project / "dispatch" / "state.json"
    if not path.exists():
        return {}
    return {e["id"]: e for e in json.loads(path.read_text())["experiments"]}


@pytest.mark.parametrize("point", POINTS)
def test_crash_at_every_point_launches_exactly_once(tmp_path: Path, point: str) -> None:
    project = make_project(tmp_path, seeds=2, sleep=0.3)
    crashed = reconcile(project, "--once", env={"RECONCILER_CRASH_AT": point})
    assert crashed.returncode in (CRASH_EXIT_CODE, 0), crashed.stderr
    # The first pass launches; the crash may hit in the first pass or (collect points) a later one.
    if crashed.returncode == 0:
        crashed = reconcile(project, "--once", env={"RECONCILER_CRASH_AT": point})

    def done() -> bool:
        s = _state(project)
        return len(s) == 2 and all(e["status"] == "done" for e in s.values())

    until(done, step=lambda: reconcile(project, "--once"))
    counts = Counter(launches(project))
    assert counts == Counter({"job_s0": 1, "job_s1": 1}), f"crash at {point}: launches {counts}"
    for entry in _state(project).values():
        assert entry["attempt"] == 1
        assert [a["n"] for a in entry["attempts"]] == [1]
    runs = project / ".reconciler" / "runs-local" / "runs"
    assert sorted(p.name for p in (runs / "job_s0").iterdir()) == ["1"]


def test_state_deleted_is_restored_and_running_jobs_adopted(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=2, sleep=2.0)
    assert reconcile(project, "--once").returncode == 0
    (project / "dispatch" / "state.json").unlink()
    out = reconcile(project, "--once")
    assert "restored from the last commit" in out.stderr
    s = _state(project)
    assert {e["status"] for e in s.values()} <= {"running", "done"}

    def done() -> bool:
        st = _state(project)
        return bool(st) and all(e["status"] == "done" for e in st.values())

    until(done, step=lambda: reconcile(project, "--once"))
    assert Counter(launches(project)) == Counter({"job_s0": 1, "job_s1": 1})


def test_state_corrupted_is_restored(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1, sleep=1.0)
    assert reconcile(project, "--once").returncode == 0
    (project / "dispatch" / "state.json").write_text('{"experiments": [ {"id": ')
    out = reconcile(project, "--once")
    assert "corrupt" in out.stderr
    until(lambda: _state(project).get("job_s0", {}).get("status") == "done", step=lambda: reconcile(project, "--once"))
    assert launches(project) == ["job_s0"]
