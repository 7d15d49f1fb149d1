"""A full disk on the status write: a clear one-line error (exit 1), no traceback, nothing
half-written or committed; the next pass, with space again, records everything."""

from __future__ import annotations

from pathlib import Path

from tests.engine.project import git, launches, make_project, reconcile


def test_full_disk_on_the_state_write_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1, sleep=1.0)
    head = git(project, "rev-parse", "HEAD")
    out = reconcile(project, "--once", env={"RECONCILER_FAIL_WRITE": "dispatch/state.json"})
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "cannot write the status files" in out.stderr and "No space left on device" in out.stderr
    assert git(project, "rev-parse", "HEAD") == head
    assert not (project / "dispatch" / "state.json").exists()
    again = reconcile(project, "--once")
    assert again.returncode == 0, again.stderr
    assert launches(project) == ["job_s0"]  # the job launched by the failed pass was adopted
    assert "job_s0" in git(project, "show", "HEAD:dispatch/state.json")
