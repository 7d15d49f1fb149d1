"""GitTree: the committed tree, never the work tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import GitStoreError
from reconciler.gitstore import GitTree, ProjectRepo
from reconciler.model.tree import Tree
from tests.gitstore.gitcmd import commit_files, git, init_repo, write


def test_reads_committed_content_not_the_work_tree(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo", {"dispatch/a.yaml": "v1\n", "dispatch/b.yaml": "b\n", "top.txt": "t"})
    write(root, "dispatch/a.yaml", "edited, not committed\n")
    write(root, "dispatch/new.yaml", "untracked\n")
    git(root, "add", "dispatch/new.yaml")  # staged is not committed either
    (root / "dispatch/b.yaml").unlink()

    tree = GitTree(root)
    assert tree.read_text("dispatch/a.yaml") == "v1\n"
    assert tree.read_text("dispatch/b.yaml") == "b\n"
    assert tree.read_text("dispatch/new.yaml") is None
    assert tree.list("dispatch") == ["a.yaml", "b.yaml"]
    assert tree.sha == git(root, "rev-parse", "HEAD")
    tree.close()


def test_listing_and_absent_paths(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo", {"d/z.txt": "", "d/a.txt": "", "d/sub/x.txt": "", "r.txt": "r"})
    with GitTree(root) as tree:
        assert tree.list("d") == ["a.txt", "z.txt"]  # files only, sorted
        assert tree.list("") == ["r.txt"]
        assert tree.list(".") == ["r.txt"]
        assert tree.list("missing") == []
        assert tree.list("r.txt") == []
        assert tree.read_text("d") is None  # a directory is not a file
        assert tree.read_text("d/missing.txt") is None
        assert tree.exists("d/sub") and not tree.exists("nope")
        with pytest.raises(GitStoreError):
            tree.read_text("../outside")
        with pytest.raises(GitStoreError):
            tree.read_text("/etc/passwd")


def test_older_revision(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo", {"f.txt": "one"})
    first = git(root, "rev-parse", "HEAD")
    commit_files(root, {"f.txt": "two"})
    with GitTree(root, first) as old, GitTree(root) as new:
        assert old.read_text("f.txt") == "one"
        assert new.read_text("f.txt") == "two"
        assert old.sha == first


def test_unknown_revision_and_empty_repository(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo", {"f.txt": "x"})
    with pytest.raises(GitStoreError, match="unknown revision"):
        GitTree(root, "no-such-branch")
    empty = init_repo(tmp_path / "empty")
    with pytest.raises(GitStoreError):
        GitTree(empty)
    with pytest.raises(GitStoreError):
        GitTree(tmp_path / "not-a-repo")


def test_non_utf8_is_a_gitstore_error(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo")
    (root / "bin.dat").write_bytes(b"\xff\xfe\x00")
    git(root, "add", "bin.dat")
    git(root, "commit", "-qm", "bin")
    with GitTree(root) as tree:
        assert tree.read_bytes("bin.dat") == b"\xff\xfe\x00"
        with pytest.raises(GitStoreError, match="not UTF-8"):
            tree.read_text("bin.dat")


def test_project_in_a_subdirectory(tmp_path: Path) -> None:
    root = init_repo(
        tmp_path / "repo",
        {
            "README.md": "outer",
            "examples/project/config/reconciler.yaml": "version: 1\n",
            "examples/project/dispatch/main.yaml": "version: 1\n",
        },
    )
    with ProjectRepo(root / "examples" / "project") as repo:
        assert repo.prefix == "examples/project"
        assert repo.root == root.resolve()
        tree = repo.tree()
        assert isinstance(tree, GitTree)
        t: Tree = tree  # structural: GitTree satisfies the Tree protocol
        assert t.read_text("config/reconciler.yaml") == "version: 1\n"
        assert t.list("dispatch") == ["main.yaml"]
        assert t.list("") == []  # the project root holds only directories
        assert t.read_text("README.md") is None  # outside the project
        with pytest.raises(GitStoreError):
            t.read_text("../../README.md")
    with GitTree(root, prefix="examples/project") as direct:
        assert direct.list("config") == ["reconciler.yaml"]
