"""Rebase local commits onto a remote tip without touching the work tree or the person's index.

``remote.push`` calls this when the remote moved on: the local commits not on the remote (the
reconciler's status commits, and any local commits of the person) are replayed one by one onto the
remote tip, each in a temporary index. The merge is per path: a path the commit changed is taken
from the commit when the new parent still has the commit's old version of it; when both sides
changed it differently the replay stops with ``GitStoreError`` (nothing is moved), because
guessing would lose someone's change. ``git rebase`` would need a clean work tree, which a
person's checkout rarely is.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.errors import GitStoreError
from reconciler.gitstore.index import temp_index, tree_of
from reconciler.gitstore.repo import ProjectRepo

_ABSENT = ("000000", "")


@dataclass(frozen=True)
class _Change:
    path: str
    old: tuple[str, str]
    """(mode, blob sha) before the commit; ``_ABSENT`` when the commit added the path."""
    new: tuple[str, str]
    """(mode, blob sha) after; ``_ABSENT`` when the commit deleted the path."""


def replay(repo: ProjectRepo, commits: list[str], onto: str) -> str:
    """Re-create ``commits`` (oldest first, each the child of the previous) on top of ``onto``;
    return the new tip. Commits that become empty are dropped; merges are refused."""
    tip = onto
    for commit in commits:
        parents = repo.run("rev-list", "--parents", "-n", "1", commit, what="replay").split()[1:]
        if len(parents) != 1:
            raise GitStoreError(f"cannot rebase {commit[:12]} onto the remote: it is a merge commit")
        tip = _replay_one(repo, commit, parents[0], tip)
    return tip


def _replay_one(repo: ProjectRepo, commit: str, parent: str, tip: str) -> str:
    changes = _changes(repo, parent, commit)
    current = _entries(repo, tip, [c.path for c in changes])
    with temp_index(repo, tip) as env:
        for change in changes:
            theirs = current.get(change.path, _ABSENT)
            if theirs == change.new:
                continue  # the remote already has this version
            if theirs != change.old:
                raise GitStoreError(f"cannot rebase {commit[:12]} onto the remote: {change.path} changed on both sides")
            if change.new == _ABSENT:
                repo.run("update-index", "--force-remove", "--", change.path, what="replay", env=env)
            else:
                info = f"{change.new[0]},{change.new[1]},{change.path}"
                repo.run("update-index", "--add", "--cacheinfo", info, what="replay", env=env)
        tree = repo.run("write-tree", what="replay", env=env)
    if tree == tree_of(repo, tip):
        return tip
    # Keep the original author, date and committer; the commit date moves to now.
    fmt = "%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%B"
    meta = repo.run("log", "-1", f"--format={fmt}", commit, what="replay", strip=False)
    an, ae, ad, cn, ce, message = meta.split("\0", 5)
    env = {
        "GIT_AUTHOR_NAME": an,
        "GIT_AUTHOR_EMAIL": ae,
        "GIT_AUTHOR_DATE": ad,
        "GIT_COMMITTER_NAME": cn,
        "GIT_COMMITTER_EMAIL": ce,
    }
    return repo.commit_tree(tree, [tip], message.rstrip("\n"), what="replay", env=env)


def _changes(repo: ProjectRepo, parent: str, commit: str) -> list[_Change]:
    out = repo.run(
        "diff-tree", "-r", "-z", "--no-renames", "--no-commit-id", "--raw", "--full-index", parent, commit,
        what="replay", strip=False,
    )  # fmt: skip
    fields = out.split("\0")
    result = []
    for head, path in zip(fields[0::2], fields[1::2], strict=False):
        if not head.startswith(":"):
            continue
        old_mode, new_mode, old_sha, new_sha, _status = head[1:].split(" ")
        old = _ABSENT if old_mode == "000000" else (old_mode, old_sha)
        new = _ABSENT if new_mode == "000000" else (new_mode, new_sha)
        result.append(_Change(path, old, new))
    return result


def _entries(repo: ProjectRepo, commit: str, paths: list[str]) -> dict[str, tuple[str, str]]:
    """(mode, sha) of each of ``paths`` that exists as a file in ``commit``."""
    if not paths:
        return {}
    out = repo.run("ls-tree", "-r", "-z", "--full-tree", commit, "--", *paths, what="replay", strip=False)
    entries: dict[str, tuple[str, str]] = {}
    for record in out.split("\0"):
        if not record:
            continue
        meta, path = record.split("\t", 1)
        mode, _type, sha = meta.split(" ")
        entries[path] = (mode, sha)
    return entries
