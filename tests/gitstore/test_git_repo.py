"""ProjectRepo: finding the work tree, dirty paths, the code archive, ancestry."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from reconciler.errors import GitStoreError, NotAProject
from reconciler.gitstore import ProjectRepo
from tests.gitstore.gitcmd import commit_files, git, init_repo, write


def test_not_a_repository(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotAProject, match=r"is not inside a git repository: `reconcile init .*` makes a project"):
        ProjectRepo(tmp_path / "plain")
    with pytest.raises(NotAProject, match="is not a directory"):
        ProjectRepo(tmp_path / "missing")


def test_head_branch_resolve_ancestry(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo", {"a": "1"})
    first = git(root, "rev-parse", "HEAD")
    second = commit_files(root, {"a": "2"})
    with ProjectRepo(root) as repo:
        assert repo.prefix == ""
        assert repo.head_sha() == second
        assert repo.resolve("HEAD~1") == first
        assert repo.branch() == "main"
        assert repo.is_ancestor(first, second)
        assert not repo.is_ancestor(second, first)
        assert repo.is_ancestor(second, second)
        with pytest.raises(GitStoreError):
            repo.resolve("nope")
    git(root, "checkout", "--quiet", "--detach")
    with ProjectRepo(root) as repo:
        assert repo.branch() is None


def test_head_of_an_empty_repository(tmp_path: Path) -> None:
    with ProjectRepo(init_repo(tmp_path / "repo")) as repo:
        with pytest.raises(NotAProject, match="has no commit yet: reconcile reads only committed files"):
            repo.head_sha()
        with pytest.raises(NotAProject, match="has no commit yet"):
            repo.tree("HEAD")


def test_dirty_paths_modified_staged_untracked(tmp_path: Path) -> None:
    root = init_repo(
        tmp_path / "repo",
        {
            "experiments/scripts/train.py": "v1",
            "experiments/scripts/eval.py": "v1",
            "experiments/scripts/old.py": "old",
            "dispatch/main.yaml": "v1",
            ".gitignore": "*.pyc\n",
        },
    )
    write(root, "experiments/scripts/train.py", "v2")  # unstaged
    write(root, "experiments/scripts/eval.py", "v2")
    git(root, "add", "experiments/scripts/eval.py")  # staged
    write(root, "experiments/scripts/new.py", "new")  # untracked
    write(root, "experiments/scripts/cache.pyc", "ignored")  # ignored: not a change
    git(root, "mv", "experiments/scripts/old.py", "experiments/scripts/renamed.py")
    write(root, "dispatch/main.yaml", "v2")  # outside 'under'
    with ProjectRepo(root) as repo:
        assert repo.dirty_paths(["experiments"]) == [
            "experiments/scripts/eval.py",
            "experiments/scripts/new.py",
            "experiments/scripts/old.py",
            "experiments/scripts/renamed.py",
            "experiments/scripts/train.py",
        ]
        assert repo.dirty_paths(["dispatch/main.yaml"]) == ["dispatch/main.yaml"]
        assert "dispatch/main.yaml" in repo.dirty_paths()
        assert repo.dirty_paths(["config"]) == []


def test_dirty_paths_in_a_subdirectory_project(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo", {"outer.txt": "1", "proj/experiments/a.py": "1"})
    write(root, "outer.txt", "2")
    write(root, "proj/experiments/a.py", "2")
    write(root, "proj/experiments/b.py", "new")
    with ProjectRepo(root / "proj") as repo:
        assert repo.dirty_paths(["experiments"]) == ["experiments/a.py", "experiments/b.py"]
        assert repo.dirty_paths() == ["experiments/a.py", "experiments/b.py"]  # never outer.txt


def test_archive_ships_the_committed_project_subtree(tmp_path: Path) -> None:
    root = init_repo(
        tmp_path / "repo",
        {"outer.txt": "no", "proj/experiments/train.py": "committed", "proj/config/r.yaml": "c"},
    )
    sha = git(root, "rev-parse", "HEAD")
    write(root, "proj/experiments/train.py", "uncommitted edit")
    write(root, "proj/experiments/untracked.py", "x")
    dest = tmp_path / "out" / "code.tar"
    with ProjectRepo(root / "proj") as repo:
        repo.archive(sha, dest)
        repo.archive("HEAD", tmp_path / "prefixed.tar", tar_prefix="code/")
        with pytest.raises(GitStoreError):
            repo.archive("no-such-rev", tmp_path / "bad.tar")
    with tarfile.open(dest) as tar:
        names = sorted(m.name for m in tar.getmembers() if m.isfile())
        assert names == ["config/r.yaml", "experiments/train.py"]
        member = tar.extractfile("experiments/train.py")
        assert member is not None and member.read() == b"committed"
    with tarfile.open(tmp_path / "prefixed.tar") as tar:
        assert "code/experiments/train.py" in tar.getnames()
    assert not (tmp_path / "bad.tar").exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["code.tar"]  # no temp file left


def test_last_change_skips_commits_that_touch_only_excluded_paths(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo", {"lab/config/reconciler.yaml": "v1", "other/x": "1"})
    desired = commit_files(root, {"lab/dispatch/a.yaml": "a"}, "person: dispatch")
    commit_files(root, {"lab/dispatch/state.json": "{}", "lab/progress/lab.log": "x"}, "reconciler status")
    commit_files(root, {"other/x": "2"}, "elsewhere in the repo")
    repo = ProjectRepo(root / "lab")
    assert repo.last_change("HEAD", exclude=("dispatch/state.json", "progress")) == desired
    changed = commit_files(root, {"lab/experiments/run.py": "print()"}, "code change")
    assert repo.last_change("HEAD", exclude=("dispatch/state.json", "progress")) == changed
