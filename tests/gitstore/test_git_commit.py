"""commit_status: only the reconciler's paths, only on change, a person's work untouched."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest

from reconciler.errors import GitStoreError
from reconciler.gitstore import ProjectRepo, commit_message, commit_status, tag
from reconciler.gitstore.writer import INDEX_SYNC_MARK
from reconciler.model.config import GitSettings
from tests.gitstore.gitcmd import commit_files, git, init_repo, porcelain, write

BOT = GitSettings(author_name="reconciler-bot", author_email="bot@example.org")


def _count(root: Path) -> int:
    return int(git(root, "rev-list", "--count", "HEAD"))


def test_commits_only_on_change(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo", {"dispatch/main.yaml": "version: 1\n"})
    with ProjectRepo(root) as repo:
        write(root, "dispatch/state.json", '{"v": 1}\n')
        sha = commit_status(repo, ["dispatch/state.json"], "reconcile: 1 change", settings=BOT)
        assert sha is not None and sha == git(root, "rev-parse", "HEAD")
        assert _count(root) == 2
        # An identical write: no commit, HEAD stays.
        write(root, "dispatch/state.json", '{"v": 1}\n')
        assert commit_status(repo, ["dispatch/state.json"], "reconcile: again", settings=BOT) is None
        assert git(root, "rev-parse", "HEAD") == sha
        assert commit_status(repo, [], "nothing") is None
    assert porcelain(root) == ""  # our path is clean in the person's index too


def test_author_committer_and_trailers(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo", {"a": "1"})
    write(root, "progress/lab.log", "line\n")
    with ProjectRepo(root) as repo:
        commit_status(
            repo,
            ["progress/lab.log"],
            "reconcile: launch logreg_blobs_s0",
            "logreg_blobs_s0: pending -> running on local gpu 0",
            {"Desired-State": "abc123", "Reconciler-Pass": "20260101T000000Z-1"},
            settings=BOT,
        )
    fmt = "%an <%ae>|%cn <%ce>|%s"
    assert git(root, "log", "-1", f"--format={fmt}") == (
        "reconciler-bot <bot@example.org>|reconciler-bot <bot@example.org>|reconcile: launch logreg_blobs_s0"
    )
    trailers = git(root, "log", "-1", "--format=%(trailers:only,unfold)")
    assert trailers.splitlines() == ["Desired-State: abc123", "Reconciler-Pass: 20260101T000000Z-1"]
    assert "pending -> running" in git(root, "log", "-1", "--format=%b")


def test_commit_message_format_and_validation() -> None:
    assert commit_message("s") == "s"
    assert commit_message("s", "b\n", {"K": "v"}) == "s\n\nb\n\nK: v"
    with pytest.raises(GitStoreError):
        commit_message("two\nlines")
    with pytest.raises(GitStoreError):
        commit_message("s", trailers={"bad key": "v"})
    with pytest.raises(GitStoreError):
        commit_message("s", trailers={"K": "multi\nline"})


def test_person_edits_are_never_committed_overwritten_or_lost(tmp_path: Path) -> None:
    root = init_repo(
        tmp_path / "repo",
        {"dispatch/main.yaml": "v1\n", "notes.md": "n1\n", "both.txt": "b1\n", "dispatch/state.json": "{}\n"},
    )
    base = git(root, "rev-parse", "HEAD")
    # Staged change, unstaged change, staged-then-edited-again, a staged new file, an untracked file.
    write(root, "dispatch/main.yaml", "v2 staged\n")
    git(root, "add", "dispatch/main.yaml")
    write(root, "notes.md", "n2 unstaged\n")
    write(root, "both.txt", "b2 staged\n")
    git(root, "add", "both.txt")
    write(root, "both.txt", "b3 unstaged\n")
    write(root, "new_staged.txt", "ns\n")
    git(root, "add", "new_staged.txt")
    write(root, "scratch.txt", "untracked\n")
    before = porcelain(root)

    write(root, "dispatch/state.json", '{"changed": true}\n')
    with ProjectRepo(root) as repo:
        sha = commit_status(repo, ["dispatch/state.json"], "reconcile: status", settings=BOT)
    assert sha is not None
    # The commit holds our path and nothing else.
    assert git(root, "diff-tree", "--no-commit-id", "--name-only", "-r", base, sha) == "dispatch/state.json"
    assert git(root, "show", f"{sha}:dispatch/main.yaml") == "v1"
    # The person's index and work tree are exactly as they were.
    assert porcelain(root) == before
    assert git(root, "show", ":dispatch/main.yaml") == "v2 staged"
    assert git(root, "show", ":both.txt") == "b2 staged"
    assert (root / "both.txt").read_text() == "b3 unstaged\n"
    assert (root / "notes.md").read_text() == "n2 unstaged\n"
    assert git(root, "show", ":new_staged.txt") == "ns"
    assert (root / "scratch.txt").read_text() == "untracked\n"
    assert git(root, "diff", "--cached", "--name-only") == "both.txt\ndispatch/main.yaml\nnew_staged.txt"
    # The person's next commit holds their staged work and no revert of ours.
    git(root, "commit", "--quiet", "-m", "person")
    assert git(root, "show", "HEAD:dispatch/state.json") == '{"changed": true}'
    assert git(root, "show", "HEAD:both.txt") == "b2 staged"


def test_deletion_directories_ignored_files_and_modes(tmp_path: Path) -> None:
    root = init_repo(
        tmp_path / "repo",
        {".gitignore": "experiments/results/\n", "progress/escalate_x.md": "help\n", "keep.txt": "k"},
    )
    (root / "progress/escalate_x.md").unlink()
    write(root, "experiments/results/x_s0.csv", "exp_id,value\nx_s0,1\n")  # ignored by the person
    write(root, "progress/env_local.json", "{}\n")
    with ProjectRepo(root) as repo:
        sha = commit_status(repo, ["progress/escalate_x.md", "experiments/results", "progress/env_local.json"], "s")
    assert sha is not None
    files = git(root, "ls-tree", "-r", "--name-only", "HEAD").splitlines()
    assert "progress/escalate_x.md" not in files
    assert "experiments/results/x_s0.csv" in files
    assert "progress/env_local.json" in files
    assert git(root, "log", "-1", "--format=%an") == "reconciler"  # default identity
    assert porcelain(root) == ""


def test_first_commit_of_an_empty_repository(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo")
    write(root, "dispatch/state.json", "{}\n")
    with ProjectRepo(root) as repo:
        sha = commit_status(repo, ["dispatch/state.json"], "first")
        assert sha is not None and repo.head_sha() == sha
    assert git(root, "rev-list", "--count", "HEAD") == "1"


def test_project_in_a_subdirectory(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo", {"README.md": "r", "examples/project/dispatch/main.yaml": "m"})
    write(root, "README.md", "person edit")
    write(root, "examples/project/dispatch/state.json", "{}\n")
    with ProjectRepo(root / "examples" / "project") as repo:
        sha = commit_status(repo, ["dispatch/state.json"], "s")
        with pytest.raises(GitStoreError):
            commit_status(repo, ["../../README.md"], "escape")
    assert sha is not None
    assert git(root, "diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD~1", "HEAD") == (
        "examples/project/dispatch/state.json"
    )
    assert porcelain(root) == " M README.md"


def test_project_hooks_do_not_run(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo", {"a": "1"})
    hook = root / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho refused >&2\nexit 1\n")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    write(root, "dispatch/state.json", "{}\n")
    with ProjectRepo(root) as repo:
        assert commit_status(repo, ["dispatch/state.json"], "s") is not None


def _race_once(monkeypatch: pytest.MonkeyPatch, repo: ProjectRepo, files: dict[str, str]) -> None:
    """The person commits ``files`` between our first read of HEAD and our ref update."""
    real = repo.resolve_or_none
    raced: list[bool] = []

    def racing(rev: str) -> str | None:
        stale = real(rev)
        if not raced:
            raced.append(True)
            commit_files(repo.root, files, "person races")
        return stale

    monkeypatch.setattr(repo, "resolve_or_none", racing)


def test_a_person_committing_other_files_during_the_pass_gets_ours_on_top(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = init_repo(tmp_path / "repo", {"a": "1"})
    write(root, "dispatch/state.json", "{}\n")
    write(root, "experiments/results/e0.csv", "x\n1\n")
    with ProjectRepo(root) as repo:
        _race_once(monkeypatch, repo, {"dispatch/e.yaml": "person\n"})
        sha = commit_status(repo, ["dispatch/state.json", "experiments/results"], "s", settings=BOT)
    assert sha is not None
    # Ours is on top of theirs, both kept; nothing of ours is left untracked.
    assert git(root, "log", "--format=%s", "-2").splitlines() == ["s", "person races"]
    assert git(root, "show", "HEAD:dispatch/e.yaml") == "person"
    assert git(root, "show", "HEAD:experiments/results/e0.csv") == "x\n1"
    assert porcelain(root) == ""


def test_a_person_committing_the_status_files_during_the_pass_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = init_repo(tmp_path / "repo", {"a": "1"})
    write(root, "dispatch/state.json", "{}\n")
    with ProjectRepo(root) as repo:
        real = repo.resolve_or_none

        def racing(rev: str) -> str | None:
            # Someone moves the branch to a commit of state.json without touching this work tree
            # (a fetch and reset elsewhere, a tool writing through plumbing).
            stale = real(rev)
            theirs = tmp_path / "theirs.json"
            theirs.write_text('{"theirs": 1}\n')
            sha = git(root, "hash-object", "-w", str(theirs))
            env = {**os.environ, "GIT_INDEX_FILE": str(tmp_path / "index")}
            entry = f"100644,{sha},dispatch/state.json"
            for args in (["read-tree", "HEAD"], ["update-index", "--add", "--cacheinfo", entry]):
                subprocess.run(["git", *args], cwd=root, check=True, env=env)
            made = subprocess.run(["git", "write-tree"], cwd=root, check=True, capture_output=True, text=True, env=env)
            tree = made.stdout.strip()
            commit = git(root, "commit-tree", tree, "-p", "HEAD", "-m", "person races")
            git(root, "update-ref", "HEAD", commit)
            monkeypatch.setattr(repo, "resolve_or_none", real)
            return stale

        monkeypatch.setattr(repo, "resolve_or_none", racing)
        with pytest.raises(GitStoreError, match=r"changed dispatch/state.json"):
            commit_status(repo, ["dispatch/state.json"], "s")
    assert git(root, "log", "-1", "--format=%s") == "person races"
    assert git(root, "show", "HEAD:dispatch/state.json") == '{"theirs": 1}'


def test_tag_is_idempotent(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo", {"a": "1"})
    first = git(root, "rev-parse", "HEAD")
    second = commit_files(root, {"a": "2"})
    with ProjectRepo(root) as repo:
        assert tag(repo, "phase/pilot-done", first, "pilot done", settings=BOT) is True
        assert tag(repo, "phase/pilot-done", second, "again") is False
        with pytest.raises(GitStoreError):
            tag(repo, "bad name", first, "m")
    assert git(root, "rev-parse", "phase/pilot-done^{commit}") == first
    assert git(root, "for-each-ref", "--format=%(taggername)", "refs/tags/phase/pilot-done") == "reconciler-bot"


def test_a_stale_index_from_a_crash_is_healed(tmp_path: Path) -> None:
    """A pass that died between the commit and the index update leaves a staged revert behind."""
    root = init_repo(tmp_path / "repo", {"dispatch/state.json": "{}\n"})
    old_blob = git(root, "rev-parse", "HEAD:dispatch/state.json")
    write(root, "dispatch/state.json", '{"v": 2}\n')
    with ProjectRepo(root) as repo:
        assert commit_status(repo, ["dispatch/state.json"], "s") is not None
        git(root, "update-index", "--cacheinfo", f"100644,{old_blob},dispatch/state.json")  # the crash
        assert porcelain(root) == "MM dispatch/state.json"
        assert commit_status(repo, ["dispatch/state.json"], "again") is None
    assert porcelain(root) == ""


def test_paths_are_literal_not_patterns(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo", {"results/a.csv": "1", "results/b.csv": "1"})
    write(root, "results/a.csv", "2")
    write(root, "results/b.csv", "2")
    write(root, "results/*.csv", "star")
    with ProjectRepo(root) as repo:
        assert commit_status(repo, ["results/*.csv"], "s") is not None
    assert git(root, "diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD~1", "HEAD") == "results/*.csv"


def test_a_pass_with_thousands_of_transitions_commits(tmp_path: Path) -> None:
    """One body line per transition: 5,000 of them are ~300 KiB, over the kernel's 128 KiB limit
    for one command-line argument, so the message cannot travel as ``-m``."""
    root = init_repo(tmp_path / "repo", {"a": "1"})
    write(root, "dispatch/state.json", '{"v": 2}\n')
    body = "\n".join(
        f"exp{i:05d}_s0: pending -> running (attempt 1 on local gpu 0 pid {10000 + i})" for i in range(5000)
    )
    assert len(body.encode()) > 128 * 1024
    with ProjectRepo(root) as repo:
        sha = commit_status(repo, ["dispatch/state.json"], "reconcile: 5000 launched", body, settings=BOT)
    assert sha is not None
    message = git(root, "log", "-1", "--format=%B")
    assert message.startswith("reconcile: 5000 launched\n\nexp00000_s0: pending -> running")
    assert "exp04999_s0" in message


def test_the_idle_check_sees_our_files_and_only_ours(tmp_path: Path) -> None:
    """An idle pass asks ``git status`` about our paths' directories (not one pathspec per file):
    a person's file beside ours neither makes a commit nor gets into one; a change to any of ours,
    tracked, staged away, renamed or new and ignored, still does."""
    results = {f"experiments/results/e{i}_s0.csv": f"exp_id,value\ne{i}_s0,{i}\n" for i in range(3)}
    root = init_repo(tmp_path / "repo", {".gitignore": "*.tmp.csv\n", **results})
    ours = sorted(results)
    write(root, "experiments/results/person.txt", "mine\n")  # untracked, not ours
    write(root, "experiments/results/scratch.tmp.csv", "x\n")  # ignored, not ours
    with ProjectRepo(root) as repo:
        assert commit_status(repo, ours, "idle", settings=BOT) is None
        assert _count(root) == 1
        write(root, "experiments/results/e1_s0.csv", "exp_id,value\ne1_s0,9\n")
        sha = commit_status(repo, ours, "changed", settings=BOT)
        assert sha is not None
        assert git(root, "diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD~1", "HEAD") == ours[1]
        # A person renamed one of ours (staged): the rename's source is ours, so the pass sees
        # it and commits our path as it is now (gone); the person's new name is theirs to commit.
        git(root, "mv", ours[0], "experiments/results/renamed.csv")
        assert commit_status(repo, ours, "renamed away", settings=BOT) is not None
        assert git(root, "diff-tree", "--no-commit-id", "--name-status", "-r", "HEAD~1", "HEAD") == f"D\t{ours[0]}"
        # A new result whose name the project's .gitignore matches is still committed.
        write(root, "experiments/results/new.tmp.csv", "exp_id,value\nnew,1\n")
        assert commit_status(repo, [*ours, "experiments/results/new.tmp.csv"], "new", settings=BOT) is not None
    files = git(root, "ls-tree", "-r", "--name-only", "HEAD").splitlines()
    assert "experiments/results/new.tmp.csv" in files
    assert "experiments/results/renamed.csv" not in files
    assert "experiments/results/person.txt" not in files and "experiments/results/scratch.tmp.csv" not in files


def test_only_what_status_shows_is_staged_and_ignored_directories_still_count(tmp_path: Path) -> None:
    """A commit stages only the paths ``git status`` shows (not every result of the project);
    a directory the project ignores, with nothing tracked in it, shows as one entry, and our new
    files under it are still committed."""
    root = init_repo(tmp_path / "repo", {"dispatch/state.json": "{}\n", ".gitignore": "experiments/results/\n"})
    first = {f"experiments/results/e{i}_s0.csv": f"exp_id,value\ne{i}_s0,{i}\n" for i in range(50)}
    for path, text in first.items():
        write(root, path, text)
    write(root, "dispatch/state.json", '{"v": 1}\n')
    ours = ["dispatch/state.json", *sorted(first)]
    with ProjectRepo(root) as repo:
        assert commit_status(repo, ours, "first results", settings=BOT) is not None
        assert git(root, "ls-tree", "-r", "--name-only", "HEAD", "experiments/results").splitlines() == sorted(first)
        write(root, "dispatch/state.json", '{"v": 2}\n')
        write(root, "experiments/results/new_s0.csv", "exp_id,value\nnew_s0,1\n")
        write(root, "experiments/results/e7_s0.csv", "exp_id,value\ne7_s0,70\n")
        (root / "experiments/results/e9_s0.csv").unlink()
        ours.append("experiments/results/new_s0.csv")
        assert commit_status(repo, ours, "more", settings=BOT) is not None
        assert commit_status(repo, ours, "idle", settings=BOT) is None
    changed = git(root, "diff-tree", "--no-commit-id", "--name-status", "-r", "HEAD~1", "HEAD").splitlines()
    assert changed == [
        "M\tdispatch/state.json",
        "M\texperiments/results/e7_s0.csv",
        "D\texperiments/results/e9_s0.csv",
        "A\texperiments/results/new_s0.csv",
    ]
    assert porcelain(root) == ""


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_an_index_lock_left_by_a_killed_pass_is_cleared(tmp_path: Path) -> None:
    """Chaos seed 20261214, scenario 946: a pass SIGKILLed while its ``git reset`` held
    ``.git/index.lock`` left the lock, and every later pass failed on it. The lock named by our
    mark, whose pass is gone and which nobody holds open, is ours: the next pass removes it."""
    root = init_repo(tmp_path / "repo", {"a": "1"})
    git_dir = root / ".git"
    (git_dir / "index.lock").write_text("")
    (git_dir / INDEX_SYNC_MARK).write_text(f"{_dead_pid()}\n")
    write(root, "dispatch/state.json", '{"v": 1}\n')
    with ProjectRepo(root) as repo:
        assert commit_status(repo, ["dispatch/state.json"], "reconcile: 1 change", settings=BOT) is not None
    assert not (git_dir / "index.lock").exists() and not (git_dir / INDEX_SYNC_MARK).exists()
    assert porcelain(root) == ""  # the person's index agrees with HEAD: nothing untracked, nothing staged


def test_a_persons_index_lock_is_left_alone_and_the_pass_goes_on(tmp_path: Path) -> None:
    """A lock without our mark is a person's git (an editor open on a commit): the status commit
    is made (it never uses the real index), the index is synced by a later pass once it is free."""
    root = init_repo(tmp_path / "repo", {"a": "1"})
    lock = root / ".git" / "index.lock"
    lock.write_text("")
    write(root, "dispatch/state.json", '{"v": 1}\n')
    with ProjectRepo(root) as repo:
        sha = commit_status(repo, ["dispatch/state.json"], "reconcile: 1 change", settings=BOT)
        assert sha is not None and lock.exists()
        lock.unlink()
        assert commit_status(repo, ["dispatch/state.json"], "reconcile: again", settings=BOT) is None
    assert porcelain(root) == ""


def test_status_commits_do_not_pile_up_loose_objects(tmp_path: Path) -> None:
    """Plumbing commits never pack by themselves; ``commit_status`` runs ``git gc --auto``, so past
    git's threshold the loose objects are packed, the state file's versions as deltas. Git
    estimates the loose objects from the ``objects/17/`` directory alone: a few loose blobs put
    there push the estimate past a threshold of 256."""
    root = init_repo(tmp_path / "repo", {"dispatch/main.yaml": "version: 1\n"})
    git(root, "config", "gc.auto", "256")
    git(root, "config", "gc.autoDetach", "false")
    rows = [f'    {{"id": "e{i}_s0", "status": "pending", "notes": "{"x" * 200}"}}' for i in range(400)]
    with ProjectRepo(root) as repo:
        for n in range(20):
            rows[n] = rows[n].replace("pending", "done")
            write(root, "dispatch/state.json", '{"experiments": [\n' + ",\n".join(rows) + "\n]}\n")
            assert commit_status(repo, ["dispatch/state.json"], f"reconcile: {n}", settings=BOT)
        loose = dict(line.split(": ") for line in git(root, "count-objects", "-v").splitlines())
        assert loose["packs"] == "0"  # under the threshold: nothing packed, nothing paid
        seeded, k = 0, 0
        while seeded < 3:
            body = f"filler {k}".encode()
            k += 1
            if hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest().startswith("17"):
                subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=root, input=body, check=True)
                seeded += 1
        write(root, "dispatch/state.json", '{"experiments": []}\n')
        assert commit_status(repo, ["dispatch/state.json"], "reconcile: last", settings=BOT)
    counts = dict(line.split(": ") for line in git(root, "count-objects", "-v").splitlines())
    assert int(counts["packs"]) >= 1 and int(counts["count"]) < 10, counts
    assert int(counts["size-pack"]) < int(loose["size"]) / 4, (counts, loose)  # KiB: deltas, not copies
