"""A private, temporary git index, so that building a commit never touches the person's index.

A status commit must contain the reconciler's files and nothing else, while a person may have
staged changes of their own in the same checkout. ``writer`` and ``replay`` therefore build trees
in a throw-away index (``GIT_INDEX_FILE``) that starts from a commit, not from the real index.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reconciler.gitstore.repo import ProjectRepo
from reconciler.model.config import GitSettings


@contextmanager
def temp_index(repo: ProjectRepo, start: str | None) -> Iterator[dict[str, str]]:
    """Yield the environment selecting a fresh index filled from commit ``start`` (empty if None)."""
    path = Path(repo.handle.git_dir) / f"reconciler-index-{secrets.token_hex(6)}"
    env = {"GIT_INDEX_FILE": str(path)}
    try:
        if start is None:
            repo.run("read-tree", "--empty", what="preparing a temporary index", env=env)
        else:
            repo.run("read-tree", start, what="preparing a temporary index", env=env)
        yield env
    finally:
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".lock").unlink(missing_ok=True)


def identity_env(settings: GitSettings) -> dict[str, str]:
    """Author and committer of the reconciler's commits and tags, from ``config/reconciler.yaml``."""
    return {
        "GIT_AUTHOR_NAME": settings.author_name,
        "GIT_AUTHOR_EMAIL": settings.author_email,
        "GIT_COMMITTER_NAME": settings.author_name,
        "GIT_COMMITTER_EMAIL": settings.author_email,
    }


def tree_of(repo: ProjectRepo, commit: str | None) -> str:
    """The tree sha of ``commit`` (the empty tree for ``None``, an unborn branch)."""
    if commit is None:
        return repo.run("hash-object", "-t", "tree", "/dev/null", what="empty tree")
    return repo.run("rev-parse", f"{commit}^{{tree}}", what=f"tree of {commit[:12]}")
