"""The project's git repository, opened once per pass by ``engine``.

The project directory may be a subdirectory of a bigger repository (``examples/project/`` inside
this one): ``ProjectRepo`` finds the enclosing work tree and maps project-relative paths (what the
rest of the package speaks) to repo-relative ones (what git speaks) through ``prefix``.

Used at the start of a pass (``head_sha``, ``tree`` for ``load``, ``dirty_paths`` for the
"uncommitted changes will not run" warning), by ``apply`` (``archive``: the code shipped to a
target), and by ``writer``/``remote``/``history``.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import git

from reconciler.errors import GitStoreError, NotAProject
from reconciler.gitstore import boundary
from reconciler.gitstore.tree import GitTree, repo_relative


class ProjectRepo:
    """A git work tree seen from a project directory inside it."""

    def __init__(self, project_dir: str | os.PathLike[str]) -> None:
        self.project_dir = Path(project_dir).resolve()
        if not self.project_dir.is_dir():
            raise NotAProject(f"{project_dir} is not a directory: give the project's directory with -C DIR")
        try:
            with boundary.git_errors(f"{self.project_dir} is not inside a git work tree"):
                self.handle = git.Repo(self.project_dir, search_parent_directories=True)
        except GitStoreError as exc:
            raise NotAProject(
                f"{project_dir} is not inside a git repository: `reconcile init {project_dir}` makes a project"
                " (then `git init` and commit it)"
            ) from exc
        """The GitPython repository; for ``gitstore`` modules only."""
        if self.handle.bare or self.handle.working_tree_dir is None:
            self.handle.close()
            raise GitStoreError(f"{self.project_dir}: a bare repository has no work tree")
        self.root = Path(self.handle.working_tree_dir).resolve()
        try:
            rel = self.project_dir.relative_to(self.root).as_posix()
        except ValueError as exc:
            self.handle.close()
            raise GitStoreError(f"{self.project_dir} is not inside the work tree {self.root}") from exc
        self.prefix = "" if rel == "." else rel
        """The project directory relative to the work tree root, ``""`` at the root."""

    @property
    def git_dir(self) -> Path:
        """The repository's git directory (for a linked worktree, that worktree's own)."""
        return Path(self.handle.git_dir)

    # -- paths -------------------------------------------------------------------------------

    def repo_path(self, relpath: str) -> str:
        """Project-relative path to repo-relative; refuses paths that leave the project."""
        return repo_relative(self.prefix, relpath)

    def project_path(self, repo_relpath: str) -> str | None:
        """Repo-relative path to project-relative; ``None`` when outside the project."""
        if not self.prefix:
            return repo_relpath
        if repo_relpath.startswith(self.prefix + "/"):
            return repo_relpath[len(self.prefix) + 1 :]
        return None

    # -- commands ----------------------------------------------------------------------------

    def run(
        self,
        *args: str,
        what: str,
        env: Mapping[str, str] | None = None,
        strip: bool = True,
        timeout: float | None = None,
    ) -> str:
        """``git <args>`` in the work tree root; stdout, or ``GitStoreError`` saying ``what`` failed."""
        return boundary.run(self.handle, list(args), what=what, env=env, strip=strip, timeout=timeout)

    def commit_tree(
        self, tree: str, parents: Sequence[str], message: str, *, what: str, env: Mapping[str, str] | None = None
    ) -> str:
        """``git commit-tree`` with the message read from a file: a pass that records thousands of
        transitions has a message far over the kernel's limit for one argument (128 KiB)."""
        fd, path = tempfile.mkstemp(prefix="reconciler-msg-", suffix=".txt")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(message if message.endswith("\n") else message + "\n")  # as -m would
            parent_args = [arg for p in parents for arg in ("-p", p)]
            return self.run("commit-tree", tree, *parent_args, "-F", path, what=what, env=env)
        finally:
            os.unlink(path)

    def execute(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> boundary.Completed:
        """``git <args>`` whose non-zero exit is an answer, not an error."""
        return boundary.execute(self.handle, list(args), env=env, timeout=timeout)

    # -- queries -----------------------------------------------------------------------------

    def head_sha(self) -> str:
        """The commit HEAD points at; ``NotAProject`` before the first commit."""
        sha = self.resolve_or_none("HEAD")
        if sha is None:
            raise self.no_commit()
        return sha

    def no_commit(self) -> NotAProject:
        return NotAProject(
            f"{self.project_dir} has no commit yet: reconcile reads only committed files; commit the project"
            " first (git add -A && git commit -m 'desired state')"
        )

    def resolve(self, rev: str) -> str:
        """The full sha of the commit ``rev`` names; ``GitStoreError`` if it names none."""
        sha = self.resolve_or_none(rev)
        if sha is None:
            raise GitStoreError(f"{self.root}: unknown revision {rev!r}")
        return sha

    def resolve_or_none(self, rev: str) -> str | None:
        done = self.execute("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
        return done.stdout.strip() if done.ok else None

    def branch(self) -> str | None:
        """The checked-out branch's short name; ``None`` on a detached HEAD."""
        done = self.execute("symbolic-ref", "--quiet", "--short", "HEAD")
        return done.stdout.strip() if done.ok else None

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether ``ancestor`` is reachable from ``descendant`` (a commit is its own ancestor)."""
        done = self.execute("merge-base", "--is-ancestor", ancestor, descendant)
        if done.status in (0, 1):
            return done.status == 0
        raise done.error("is-ancestor")

    def tree(self, rev: str = "HEAD") -> GitTree:
        """The project's files as committed at ``rev`` (what ``load`` reads); ``NotAProject``
        when ``rev`` is HEAD and there is no commit yet, ``GitStoreError`` for another unknown rev."""
        try:
            return GitTree(self.handle, rev, prefix=self.prefix)
        except GitStoreError:
            if self.resolve_or_none(rev) is None:
                if rev == "HEAD" and self.resolve_or_none("HEAD") is None:
                    raise self.no_commit() from None
                raise GitStoreError(f"unknown revision {rev!r}: `git log --oneline` lists the commits") from None
            raise

    def last_change(self, rev: str = "HEAD", exclude: Sequence[str] = ()) -> str:
        """The newest commit at or before ``rev`` that changed the project outside ``exclude``
        (project-relative paths): the revision of the desired state and code, ignoring the
        reconciler's own status commits. ``rev`` itself when nothing else ever changed."""
        specs = [f":(literal){self.prefix or '.'}", *(f":(exclude,literal){self.repo_path(p)}" for p in exclude)]
        # Pathspec magic is switched off by default (BASE_ENV); these specs spell ``literal`` out.
        sha = self.run(
            "log", "-1", "--format=%H", rev, "--", *specs,
            what="git log of the desired state", env={"GIT_LITERAL_PATHSPECS": "0"},
        )  # fmt: skip
        return sha or self.resolve(rev)

    def dirty_paths(self, under: Sequence[str] = ()) -> list[str]:
        """Project-relative paths with uncommitted changes (staged, unstaged or untracked, not
        ignored) under ``under`` (project-relative files or directories; empty = the project)."""
        specs = [self.repo_path(p) for p in under] if under else [self.prefix or "."]
        out = self.run(
            "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *specs,
            what="git status", strip=False,
        )  # fmt: skip
        mapped = (self.project_path(p) for p in set(status_names(out)))
        return sorted(p for p in mapped if p is not None)

    def archive(self, commit: str, dest_tar_path: str | os.PathLike[str], tar_prefix: str = "") -> None:
        """Write the project's subtree at ``commit`` as a tar file (the code shipped to targets).

        Members are relative to the project directory, under ``tar_prefix`` (e.g. ``"code/"``).
        The file appears complete or not at all.
        """
        sha = self.resolve(commit)
        treeish = f"{sha}:{self.prefix}" if self.prefix else sha
        dest = Path(dest_tar_path).resolve()
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
        args = ["archive", "--format=tar", f"--output={tmp}"]
        if tar_prefix:
            args.append(f"--prefix={tar_prefix}")
        try:
            self.run(*args, treeish, what=f"git archive {commit}")
            with boundary.git_errors(f"git archive {commit}"):
                os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop GitPython's persistent ``cat-file`` helpers."""
        self.handle.close()

    def __enter__(self) -> ProjectRepo:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def status_names(porcelain_z: str) -> list[str]:
    """Every path named by ``git status --porcelain -z`` (both sides of a rename or copy)."""
    names: list[str] = []
    fields = porcelain_z.split("\0")
    i = 0
    while i < len(fields):
        record = fields[i]
        i += 1
        if len(record) < 4:
            continue
        names.append(record[3:])
        if record[0] in "RC" or record[1] in "RC":  # a rename or copy: its source follows
            if i < len(fields):
                names.append(fields[i])
            i += 1
    return names
