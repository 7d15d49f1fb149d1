"""Commit the status files at the end of a pass, and tag phases.

``engine`` renders the status files into the work tree (``reconciler.atomic``), then calls
``commit_status`` with exactly those paths. The commit is built in a temporary index started from
HEAD, so it holds the reconciler's paths and nothing else: a person's staged or unstaged edits to
other files stay exactly as they were, staged or not. No commit is made when the paths equal HEAD
(invariant 2: an unchanged pass makes no commit). The ref update is a compare-and-swap: when a
person committed other files during the pass, the status commit is rebuilt on their commit at
once; when their commit changed the status files themselves, the pass fails and nothing of theirs
is lost. Commits are made with ``commit-tree`` and
``update-ref``, so the project's own git hooks (which refuse hand edits to status files) do not run.
"""

from __future__ import annotations

import os
import posixpath
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from reconciler.atomic import pid_alive
from reconciler.errors import GitStoreError
from reconciler.gitstore.index import identity_env, temp_index, tree_of
from reconciler.gitstore.packing import keep_packed
from reconciler.gitstore.repo import ProjectRepo, status_names
from reconciler.model.config import GitSettings

_TRAILER_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_ATTEMPTS = 5
"""How often a status commit is rebuilt on a HEAD that a person moved meanwhile."""


def commit_status(
    repo: ProjectRepo,
    paths: Sequence[str],
    subject: str,
    body: str = "",
    trailers: Mapping[str, str] | None = None,
    *,
    settings: GitSettings | None = None,
) -> str | None:
    """Commit the work-tree content of ``paths`` (project-relative files or directories; a missing
    path is committed as a deletion) on top of HEAD; return the new sha, or ``None`` (and no
    commit) when nothing under ``paths`` differs from HEAD."""
    if not paths:
        return None
    identity = identity_env(settings or GitSettings())
    message = commit_message(subject, body, trailers)
    repo_paths = sorted({repo.repo_path(p) for p in paths})
    what = f"committing {', '.join(paths)}"
    for attempt in range(_ATTEMPTS):
        head = repo.resolve_or_none("HEAD")
        built = _build(repo, head, repo_paths, what)
        if built is None:
            return None
        tree, staged = built
        if tree is None:
            if head is not None:
                _sync_index(repo, staged)
            return None
        sha = repo.commit_tree(tree, [head] if head else [], message, what=what, env=identity)
        # The expected old value makes this a compare-and-swap: a commit someone made meanwhile
        # is never thrown away.
        done = repo.execute("update-ref", "-m", f"reconciler: {subject}", "HEAD", sha, head or "")
        if done.ok:
            break
        moved = repo.resolve_or_none("HEAD")
        if head is None or moved is None or attempt == _ATTEMPTS - 1:
            raise done.error(what)
        if moved == head:
            time.sleep(0.1 * (attempt + 1))  # the ref was locked by someone's git command
            continue
        touched = _touched(repo, head, moved, repo_paths)
        if touched:
            # Someone committed the status files themselves: which version wins is not ours to
            # guess. The pass fails; the next one starts from their HEAD and rewrites ours.
            raise GitStoreError(
                f"{what}: HEAD moved to {moved[:12]} during the pass and that commit changed "
                f"{', '.join(touched[:5])}; the next pass records the status on top of it"
            )
        # A person's commit to other files (a spec edit, code): ours goes on top of it at once, so
        # the results this pass brought back are never left uncommitted until the next pass.
    try:
        _sync_index(repo, staged)
    except GitStoreError as exc:
        raise GitStoreError(
            f"committed {sha[:12]}, but the index was not updated ({exc}); "
            f"the next pass retries, or run: git reset -- {' '.join(staged)}"
        ) from exc
    # Plumbing never packs: git's gc by count, a repack past the loose bytes (``packing``).
    keep_packed(repo, (settings or GitSettings()).pack_loose_mib)
    return sha


def _build(
    repo: ProjectRepo, head: str | None, repo_paths: list[str], what: str
) -> tuple[str | None, list[str]] | None:
    """The tree of ``head`` with our paths as the work tree has them, and the paths staged;
    ``None`` when nothing of ours differs from HEAD by ``git status``; a ``None`` tree when the
    built tree equals HEAD's."""
    changed = _changed(repo, repo_paths) if head is not None else None
    if changed is not None and not changed:
        return None
    # Only what git status showed goes through ``git add`` (the temporary index starts from HEAD
    # with no stat data, so adding all our paths would hash every result file of the project).
    staged = repo_paths if changed is None else changed
    present = [p for p in staged if os.path.lexists(repo.root / p)]
    missing = sorted(set(staged).difference(present))
    with temp_index(repo, head) as env:
        if present:
            # --force: these paths are the reconciler's, a project's .gitignore does not apply.
            repo.run("add", "--all", "--force", "--", *present, what=what, env=env)
        if missing:
            repo.run("rm", "-r", "--cached", "--ignore-unmatch", "--quiet", "--", *missing, what=what, env=env)
        tree = repo.run("write-tree", what=what, env=env)
    return (None if tree == tree_of(repo, head) else tree), staged


def _touched(repo: ProjectRepo, old: str, new: str, repo_paths: list[str]) -> list[str]:
    """Which of our paths (or paths under them) the commits from ``old`` to ``new`` changed;
    every path, as a refusal, when ``new`` does not descend from ``old`` (history rewritten)."""
    if not repo.is_ancestor(old, new):
        return repo_paths
    out = repo.run(
        "diff", "--name-only", "-z", "--no-renames", old, new, "--", *repo_paths,
        what="checking what moved HEAD",
    )  # fmt: skip
    return [p for p in out.split("\0") if p]


INDEX_SYNC_MARK = "reconciler-index-sync"
"""In the git dir while a pass of ours updates the real index: the pid that holds ``index.lock``."""


def _sync_index(repo: ProjectRepo, repo_paths: list[str]) -> None:
    """Make the person's index agree with HEAD for our paths (and only those).

    After a status commit the real index still holds the old blobs for our paths, which would read
    as staged reverts (and a person's next ``git commit`` would revert us). The check is read-only,
    so an unchanged pass does not take the index lock; a pass that crashed between the commit and
    this step is healed by the next one.

    A pass killed while its ``git reset`` held ``.git/index.lock`` leaves the lock behind, and git
    refuses every later index update until someone removes it. ``INDEX_SYNC_MARK`` names the pass
    that took the lock: when that process is gone and nothing holds the lock open, the lock is
    ours and stale, and is removed. A lock without our mark is a person's git (an editor open on a
    commit): it is left alone, and so is the index, until a later pass finds it free.
    """
    if repo.execute("diff", "--cached", "--quiet", "HEAD", "--", *repo_paths).ok:
        return
    git_dir = Path(repo.handle.git_dir)
    lock, mark = git_dir / "index.lock", git_dir / INDEX_SYNC_MARK
    if lock.exists():
        if not _stale_lock_of_ours(lock, mark):
            return  # a person's git holds the index: the next pass syncs it
        lock.unlink(missing_ok=True)
    mark.write_text(f"{os.getpid()}\n")
    try:
        repo.run("reset", "--quiet", "--", *repo_paths, what="updating the index for the status files")
    except GitStoreError as exc:
        if "index.lock" not in str(exc):
            raise
        # someone took the index between the check and the reset: theirs; the next pass syncs
    finally:
        mark.unlink(missing_ok=True)


def _stale_lock_of_ours(lock: Path, mark: Path) -> bool:
    """``lock`` was taken by a pass of ours that is gone, and no process has it open."""
    try:
        pid = int(mark.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    if pid == os.getpid() or pid_alive(pid):
        return False
    return not _held_open(lock)


def _held_open(path: Path) -> bool:
    """Some process has ``path`` open (Linux ``/proc``; elsewhere, assume it may)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    target = str(path)
    for fd_dir in proc.glob("[0-9]*/fd"):
        try:
            for fd in fd_dir.iterdir():
                if os.readlink(fd) == target:
                    return True
        except OSError:
            continue
    return False


def _changed(repo: ProjectRepo, repo_paths: Sequence[str]) -> list[str] | None:
    """Which of our paths may differ from HEAD, from ``git status`` (stat-cached in the real
    index): a change against the index, an index change against HEAD, a new file (ignored ones
    included: the reconciler's files are committed even where .gitignore matches). A path where
    the work tree differs from HEAD differs from the index or the index from HEAD, so it is
    shown. Empty: the fast path of an idle pass; ``None`` when status fails (then every path
    goes through the temporary index).

    ``git status`` is asked about the paths' directories, not about each path: thousands of
    literal pathspecs (one per result file) cost git far more than the few directories that
    hold them; what it shows outside our paths is filtered out here."""
    ours = set(repo_paths)
    dirs = sorted({posixpath.dirname(p) or p for p in ours})
    done = repo.execute("status", "--porcelain", "-z", "--ignored=matching", "--untracked-files=all", "--", *dirs)
    if done.status != 0:
        return None
    changed: set[str] = set()
    for name in status_names(done.stdout):
        if name.endswith("/"):  # a whole directory with nothing tracked (ignored): ours under it
            changed.update(p for p in ours if p.startswith(name))
        path = name.rstrip("/")
        if _is_ours(path, ours):
            changed.add(path)
    return sorted(changed)


def _is_ours(name: str, ours: set[str]) -> bool:
    """``name`` is one of ``ours`` or lies under one of them (a directory path)."""
    name = name.rstrip("/")
    while name:
        if name in ours:
            return True
        name = posixpath.dirname(name)
    return False


def commit_message(subject: str, body: str = "", trailers: Mapping[str, str] | None = None) -> str:
    """``subject``, a blank line, ``body``, a blank line, then ``Key: value`` trailer lines."""
    if not subject.strip() or "\n" in subject:
        raise GitStoreError(f"a commit subject is one non-empty line: {subject!r}")
    parts = [subject.strip()]
    if body.strip():
        parts.append(body.strip("\n"))
    if trailers:
        lines = []
        for key, value in trailers.items():
            if not _TRAILER_KEY.fullmatch(key) or "\n" in value:
                raise GitStoreError(f"bad commit trailer {key!r}: {value!r}")
            lines.append(f"{key}: {value}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def tag(repo: ProjectRepo, name: str, sha: str, message: str, *, settings: GitSettings | None = None) -> bool:
    """Create the annotated tag ``name`` on ``sha``; ``False`` (nothing done) when it exists."""
    if repo.execute("rev-parse", "--verify", "--quiet", f"refs/tags/{name}").ok:
        return False
    repo.run(
        "tag", "--annotate", "--no-sign", "--message", message, "--", name, sha,
        what=f"tagging {name}", env=identity_env(settings or GitSettings()),
    )  # fmt: skip
    return True
