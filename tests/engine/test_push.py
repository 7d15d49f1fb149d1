"""Status commits pushed to a real (bare) remote: after every pass, with fetch and rebase when a
person pushed meanwhile, and again on a later pass when the remote was away."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.engine.project import git, make_project, reconcile

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

ID = ("-c", "user.name=p", "-c", "user.email=p@localhost")


def with_remote(tmp_path: Path) -> tuple[Path, Path]:
    project = make_project(tmp_path, seeds=1, sleep=0.5)
    config = project / "config" / "reconciler.yaml"
    config.write_text(config.read_text() + "git: {push: true}\n")
    git(project, *ID, "commit", "-qam", "push status commits")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    git(project, "remote", "add", "origin", str(remote))
    git(project, "push", "-q", "-u", "origin", "main")
    return project, remote


def test_status_commits_reach_the_remote_even_after_a_competing_push(tmp_path: Path) -> None:
    project, remote = with_remote(tmp_path)
    assert reconcile(project, "--once").returncode == 0
    assert git(remote, "log", "-1", "--format=%s", "main").startswith("reconcile: 1 launched")

    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(remote), str(other))
    (other / "notes.md").write_text("a person's note\n")
    git(other, "add", "notes.md")
    git(other, *ID, "commit", "-qm", "person: notes")
    git(other, "push", "-q")

    def pushed_done() -> bool:
        reconcile(project, "--once")
        return '"status": "done"' in git(remote, "show", "main:dispatch/state.json")

    for _ in range(40):
        if pushed_done():
            break
    else:
        raise AssertionError("the done status never reached the remote")
    subjects = git(remote, "log", "--format=%s", "main").splitlines()
    assert "person: notes" in subjects  # rebased onto, not overwritten
    assert git(remote, "show", "main:notes.md") == "a person's note"


def test_a_remote_away_delays_the_push_to_a_later_pass(tmp_path: Path) -> None:
    project, remote = with_remote(tmp_path)
    away = tmp_path / "away.git"
    shutil.move(remote, away)
    out = reconcile(project, "--once")
    assert out.returncode == 1
    assert "push failed, will retry on the next pass" in out.stderr
    local = git(project, "rev-parse", "HEAD")
    assert git(project, "log", "-1", "--format=%s").startswith("reconcile: 1 launched")  # committed anyway
    shutil.move(away, remote)
    reconcile(project, "--once")
    assert git(project, "merge-base", "--is-ancestor", local, git(remote, "rev-parse", "main")) == ""
