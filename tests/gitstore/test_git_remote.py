"""pull_ff and push against a real bare remote, with a second clone making competing commits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.errors import GitStoreError, PushConflict
from reconciler.gitstore import ProjectRepo, commit_status, pull_ff, push, remote, tag
from tests.gitstore.gitcmd import commit_files, git, init_repo, porcelain, write


@dataclass
class World:
    remote: Path
    ours: Path  # the checkout reconcile runs in
    theirs: Path  # a colleague's clone


@pytest.fixture
def world(tmp_path: Path) -> World:
    seed = init_repo(tmp_path / "seed", {"dispatch/main.yaml": "v1\n", "dispatch/state.json": "{}\n"})
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(seed), str(bare))
    git(tmp_path, "clone", "--quiet", str(bare), "ours")
    git(tmp_path, "clone", "--quiet", str(bare), "theirs")
    return World(bare, tmp_path / "ours", tmp_path / "theirs")


def _competing(w: World, files: dict[str, str], message: str = "colleague") -> str:
    sha = commit_files(w.theirs, files, message)
    git(w.theirs, "push", "--quiet", "origin", "main")
    return sha


def _status_commit(w: World, text: str) -> str:
    write(w.ours, "dispatch/state.json", text)
    with ProjectRepo(w.ours) as repo:
        sha = commit_status(repo, ["dispatch/state.json"], "reconcile: status", trailers={"Reconciler-Pass": "p1"})
    assert sha is not None
    return sha


def _remote_tip(w: World) -> str:
    return git(w.remote, "rev-parse", "main")


def _person_edits(root: Path) -> str:
    write(root, "notes.md", "unstaged, untracked\n")
    write(root, "dispatch/main.yaml", "v2 staged\n")
    git(root, "add", "dispatch/main.yaml")
    return porcelain(root)


def test_pull_fast_forwards_and_keeps_local_edits(world: World) -> None:
    tip = _competing(world, {"dispatch/extra.yaml": "new\n", "experiments/train.py": "x\n"})
    before = _person_edits(world.ours)
    with ProjectRepo(world.ours) as repo:
        assert pull_ff(repo) == tip
        assert repo.head_sha() == tip
        assert pull_ff(repo, "origin", "main") == tip  # nothing new: no-op
    assert (world.ours / "dispatch/extra.yaml").read_text() == "new\n"
    assert porcelain(world.ours) == before
    assert git(world.ours, "show", ":dispatch/main.yaml") == "v2 staged"


def test_pull_keeps_a_local_branch_that_is_ahead(world: World) -> None:
    ours = _status_commit(world, '{"a": 1}\n')
    with ProjectRepo(world.ours) as repo:
        assert pull_ff(repo) == ours


def test_pull_refuses_a_diverged_branch(world: World) -> None:
    _competing(world, {"x.txt": "theirs"})
    ours = _status_commit(world, '{"a": 1}\n')
    with ProjectRepo(world.ours) as repo, pytest.raises(GitStoreError, match="diverged"):
        pull_ff(repo)
    assert git(world.ours, "rev-parse", "HEAD") == ours


def test_pull_refuses_to_overwrite_a_local_edit(world: World) -> None:
    _competing(world, {"dispatch/main.yaml": "theirs\n"})
    write(world.ours, "dispatch/main.yaml", "mine, unsaved work\n")
    head = git(world.ours, "rev-parse", "HEAD")
    with ProjectRepo(world.ours) as repo, pytest.raises(GitStoreError, match="overwritten"):
        pull_ff(repo)
    assert git(world.ours, "rev-parse", "HEAD") == head
    assert (world.ours / "dispatch/main.yaml").read_text() == "mine, unsaved work\n"


def test_push_plain(world: World) -> None:
    sha = _status_commit(world, '{"a": 1}\n')
    with ProjectRepo(world.ours) as repo:
        tag(repo, "phase/pilot", sha, "pilot done")
        assert push(repo) == sha
    assert _remote_tip(world) == sha
    assert git(world.remote, "rev-parse", "phase/pilot^{commit}") == sha


def test_push_rebases_onto_a_competing_commit(world: World) -> None:
    theirs = _competing(world, {"dispatch/decisions.yaml": "version: 1\n"})
    ours = _status_commit(world, '{"a": 1}\n')
    before = _person_edits(world.ours)
    with ProjectRepo(world.ours) as repo:
        pushed = push(repo, "origin", "main", retries=3)
        head = repo.head_sha()
    assert pushed == head
    assert head != ours  # rebased
    assert _remote_tip(world) == head
    assert git(world.ours, "rev-parse", "HEAD~1") == theirs
    assert git(world.ours, "log", "-1", "--format=%s|%an|%(trailers:only,unfold)") == (
        "reconcile: status|reconciler|Reconciler-Pass: p1"
    )
    assert git(world.ours, "show", "HEAD:dispatch/state.json") == '{"a": 1}'
    # The colleague's file arrived; the person's own edits are as they were.
    assert (world.ours / "dispatch/decisions.yaml").read_text() == "version: 1\n"
    assert porcelain(world.ours) == before


def test_push_with_local_person_commits_keeps_them(world: World) -> None:
    _competing(world, {"x.txt": "theirs"})
    commit_files(world.ours, {"experiments/new.py": "mine"}, "person: new script")
    _status_commit(world, '{"b": 2}\n')
    with ProjectRepo(world.ours) as repo:
        push(repo)
    subjects = git(world.remote, "log", "--format=%s", "-3", "main").splitlines()
    assert subjects == ["reconcile: status", "person: new script", "colleague"]


def test_push_gives_up_with_push_conflict(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The remote moves again after every fetch: after the retries, PushConflict."""
    _competing(world, {"x.txt": "0"})
    ours = _status_commit(world, '{"a": 1}\n')
    real_fetch = remote.fetch
    calls: list[int] = []

    def fetch_then_race(repo: ProjectRepo, name: str, branch: str) -> str:
        tip = real_fetch(repo, name, branch)
        calls.append(1)
        _competing(world, {"x.txt": str(len(calls))})
        return tip

    monkeypatch.setattr(remote, "fetch", fetch_then_race)
    with ProjectRepo(world.ours) as repo, pytest.raises(PushConflict) as info:
        push(repo, retries=2)
    assert len(calls) == 3
    assert isinstance(info.value, GitStoreError)
    assert git(world.remote, "log", "--format=%s", "-1", "main") == "colleague"
    # Our status commit is still there, rebased, waiting for the next pass.
    assert git(world.ours, "show", "HEAD:dispatch/state.json") == '{"a": 1}'
    assert git(world.ours, "rev-parse", "HEAD") != ours


def test_push_without_retries(world: World) -> None:
    _competing(world, {"x.txt": "theirs"})
    ours = _status_commit(world, '{"a": 1}\n')
    with ProjectRepo(world.ours) as repo, pytest.raises(PushConflict):
        push(repo, retries=0)
    assert git(world.ours, "rev-parse", "HEAD") == ours


def test_push_stops_when_both_sides_changed_the_same_file(world: World) -> None:
    _competing(world, {"dispatch/state.json": '{"theirs": 1}\n'})
    ours = _status_commit(world, '{"ours": 1}\n')
    with ProjectRepo(world.ours) as repo, pytest.raises(GitStoreError, match="changed on both sides"):
        push(repo)
    assert git(world.ours, "rev-parse", "HEAD") == ours
    assert (world.ours / "dispatch/state.json").read_text() == '{"ours": 1}\n'


def test_push_refused_for_another_reason_is_not_retried(world: World) -> None:
    hook = world.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch' >&2\nexit 1\n")
    hook.chmod(0o755)
    _status_commit(world, '{"a": 1}\n')
    with ProjectRepo(world.ours) as repo, pytest.raises(GitStoreError, match="protected branch") as info:
        push(repo)
    assert not isinstance(info.value, PushConflict)


def test_push_to_an_unknown_remote(world: World) -> None:
    with ProjectRepo(world.ours) as repo, pytest.raises(GitStoreError):
        push(repo, "nowhere", "main")
