"""Crash injection: the reconciler dies (``os._exit``) at every named point of a pass; the next
normal passes must launch every experiment exactly once and lose no transition."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from reconciler.crashpoints import CRASH_EXIT_CODE, POINTS
from tests.engine.project import git, launches, make_project, reconcile, until

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default


def _state(project: Path) -> dict[str, dict[str, object]]:
    path = project / "dispatch" / "state.json"
    if not path.exists():
        return {}
    return {e["id"]: e for e in json.loads(path.read_text())["experiments"]}


def _crash_once(project: Path, point: str, passes: int = 40) -> None:
    """Run passes with the crash armed until one dies at ``point`` (the point must be reached)."""
    for _ in range(passes):
        out = reconcile(project, "--once", env={"RECONCILER_CRASH_AT": point})
        if out.returncode == CRASH_EXIT_CODE:
            return
        assert out.returncode == 0, out.stderr
    raise AssertionError(f"no pass reached the crash point {point}")


RUN_POINTS = [p for p in POINTS if p != "after_kill"]


@pytest.mark.parametrize("point", RUN_POINTS)
def test_crash_at_every_point_launches_exactly_once(tmp_path: Path, point: str) -> None:
    project = make_project(tmp_path, seeds=2, sleep=0.3)
    _crash_once(project, point)

    def done() -> bool:
        s = _state(project)
        return len(s) == 2 and all(e["status"] == "done" for e in s.values())

    until(done, step=lambda: reconcile(project, "--once"))
    counts = Counter(launches(project))
    assert counts == Counter({"job_s0": 1, "job_s1": 1}), f"crash at {point}: launches {counts}"
    for entry in _state(project).values():
        assert entry["attempt"] == 1
        assert [a["n"] for a in entry["attempts"]] == [1]
        assert (project / entry["result_file"]).exists()
        assert git(project, "ls-files", "--", entry["result_file"]) == entry["result_file"]  # and committed
    runs = project / ".reconciler" / "runs-local" / "runs"
    assert sorted(p.name for p in (runs / "job_s0").iterdir()) == ["1"]
    # Every transition reached git: the last commit's state equals the working tree's.
    assert git(project, "show", "HEAD:dispatch/state.json") == (project / "dispatch/state.json").read_text().strip()


def test_crash_after_kill_still_cancels_exactly_once(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=2, sleep=60)
    assert reconcile(project, "--once").returncode == 0
    spec = project / "dispatch" / "experiments.yaml"
    spec.write_text(spec.read_text().replace("group: main", "group: main\n    state: cancelled"))
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "cancel the job")
    _crash_once(project, "after_kill")

    def cancelled() -> bool:
        s = _state(project)
        return len(s) == 2 and all(e["status"] == "cancelled" for e in s.values())

    until(cancelled, step=lambda: reconcile(project, "--once"))
    assert Counter(launches(project)) == Counter({"job_s0": 1, "job_s1": 1})
    for entry in _state(project).values():
        pid = entry["attempts"][0]["pid"]
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]


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
