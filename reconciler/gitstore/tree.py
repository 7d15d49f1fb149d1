"""The committed tree: what a pass reads its desired state from.

``GitTree`` implements ``reconciler.model.tree.Tree`` over one commit, so that ``load`` sees the
files exactly as committed at HEAD and never a person's uncommitted edits. The engine builds one
per pass (``ProjectRepo.tree()``); ``history`` builds one per commit it walks. Reads go through
GitPython's object database (one persistent ``cat-file`` process), not one subprocess per file.
"""

from __future__ import annotations

import os
import posixpath
from types import TracebackType

import git
from git.objects import Blob, Commit
from git.objects import Tree as GitObjectTree

from reconciler.errors import GitStoreError
from reconciler.gitstore.boundary import git_errors


class GitTree:
    """The project's files at one commit; paths are project-relative (``prefix`` is added)."""

    def __init__(self, repo: str | os.PathLike[str] | git.Repo, rev: str = "HEAD", *, prefix: str = "") -> None:
        self._owned = not isinstance(repo, git.Repo)
        with git_errors(f"{repo}: not a git repository"):
            self._handle = repo if isinstance(repo, git.Repo) else git.Repo(repo)
        self.prefix = prefix.strip("/")
        try:
            with git_errors(f"unknown revision {rev!r}"):
                self._commit: Commit = self._handle.commit(rev)
                self.sha: str = self._commit.hexsha
                """The full sha of the commit this tree belongs to."""
        except GitStoreError:
            self.close()
            raise
        self.rev = rev

    def read_bytes(self, relpath: str) -> bytes | None:
        """The file's bytes; ``None`` when absent (or when ``relpath`` is a directory)."""
        obj = self._lookup(relpath)
        if not isinstance(obj, Blob):
            return None
        with git_errors(f"reading {relpath} at {self.sha[:12]}"):
            data: bytes = obj.data_stream.read()
        return data

    def read_text(self, relpath: str) -> str | None:
        """The file's UTF-8 text; ``None`` when absent."""
        data = self.read_bytes(relpath)
        if data is None:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise GitStoreError(f"{relpath} at {self.sha[:12]} is not UTF-8 text: {exc}") from exc

    def exists(self, relpath: str) -> bool:
        """Whether a file or directory is at ``relpath``."""
        return self._lookup(relpath) is not None

    def close(self) -> None:
        """Release the repository handle when this tree opened it itself."""
        if self._owned:
            self._handle.close()

    def __enter__(self) -> GitTree:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GitTree({self.sha[:12]}, prefix={self.prefix!r})"

    def _lookup(self, relpath: str) -> Blob | GitObjectTree | None:
        path = repo_relative(self.prefix, relpath)
        with git_errors(f"reading {relpath} at {self.sha[:12]}"):
            try:
                obj = self._commit.tree if path == "." else self._commit.tree / path
            except KeyError:
                return None
        return obj if isinstance(obj, (Blob, GitObjectTree)) else None  # a submodule is neither

    def list(self, dirpath: str) -> list[str]:
        """Names of the files directly in ``dirpath``, sorted; ``[]`` when absent."""
        obj = self._lookup(dirpath or ".")
        if not isinstance(obj, GitObjectTree):
            return []
        with git_errors(f"listing {dirpath} at {self.sha[:12]}"):
            return sorted(b.name for b in obj.blobs)


def repo_relative(prefix: str, relpath: str) -> str:
    """Join a project-relative ``relpath`` (``/``-separated) to ``prefix``; ``..`` and absolute
    paths are refused so that nothing outside the project is ever read or staged."""
    if not relpath or relpath.startswith("/"):
        raise GitStoreError(f"not a project-relative path: {relpath!r}")
    norm = posixpath.normpath(relpath)
    if norm == ".." or norm.startswith("../"):
        raise GitStoreError(f"path leaves the project: {relpath!r}")
    if norm == ".":
        return prefix or "."
    return f"{prefix}/{norm}" if prefix else norm
