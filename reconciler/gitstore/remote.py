"""Pull before a pass, push after it.

``engine`` calls ``pull_ff`` first (when ``git.pull`` is set) so that the pass reads the newest
committed desired state, and ``push`` last (when ``git.push`` is set) to publish the status
commits. Both move HEAD the way ``git checkout`` does (``read-tree -m -u``): files changed on the
remote are updated in the work tree, a person's staged and unstaged edits to other files are
carried over untouched, and an edit that would be overwritten stops the move with an error.
"""

from __future__ import annotations

from reconciler.errors import GitStoreError, PushConflict
from reconciler.gitstore.boundary import NETWORK_ENV, NETWORK_TIMEOUT
from reconciler.gitstore.replay import replay
from reconciler.gitstore.repo import ProjectRepo


def pull_ff(repo: ProjectRepo, remote: str = "origin", branch: str | None = None) -> str:
    """Fast-forward HEAD to ``remote``'s ``branch`` (default: the checked-out branch's name);
    return the new HEAD. A local branch ahead of the remote stays as it is; a diverged one raises
    ``GitStoreError`` (nothing is merged or rebased on pull)."""
    branch = branch or _current_branch(repo)
    head = repo.head_sha()
    tip = fetch(repo, remote, branch)
    if repo.is_ancestor(tip, head):
        return head
    if not repo.is_ancestor(head, tip):
        raise GitStoreError(
            f"HEAD ({head[:12]}) and {remote}/{branch} ({tip[:12]}) have diverged; the reconciler "
            "only fast-forwards: merge or rebase by hand, then run it again"
        )
    move_head(repo, head, tip, reason=f"reconciler: fast-forward to {remote}/{branch}")
    return tip


def push(repo: ProjectRepo, remote: str = "origin", branch: str | None = None, retries: int = 3) -> str:
    """Push HEAD to ``remote``'s ``branch`` (default: the checked-out branch's name), with
    annotated tags on the pushed commits; return the sha pushed (it differs from the status
    commit's when a rebase happened). When the remote moved on, fetch, rebase the local commits
    onto it (``replay``) and try again, ``retries`` times; then raise ``PushConflict``."""
    branch = branch or _current_branch(repo)
    refspec = f"HEAD:refs/heads/{branch}"
    for attempt in range(retries + 1):
        done = repo.execute(
            "push", "--quiet", "--follow-tags", remote, refspec,
            env=NETWORK_ENV, timeout=NETWORK_TIMEOUT,
        )  # fmt: skip
        head = repo.head_sha()
        if done.ok:
            return head
        try:
            tip = fetch(repo, remote, branch)
        except GitStoreError as exc:  # unreachable remote, new branch refused: git's push error says it
            raise done.error(f"pushing to {remote}/{branch}") from exc
        if repo.is_ancestor(tip, head):
            # Not a race: the remote refused for another reason (hook, permissions, network).
            raise done.error(f"pushing to {remote}/{branch}")
        if attempt == retries:
            break
        local = repo.run("rev-list", "--reverse", "--topo-order", f"{tip}..{head}", what="rebase").split()
        new_head = replay(repo, local, tip)
        move_head(repo, head, new_head, reason=f"reconciler: rebase onto {remote}/{branch}")
    raise PushConflict(
        f"{remote}/{branch} kept moving: the push was rejected {retries + 1} times; "
        "the status commits stay local and the next pass pushes them"
    )


def fetch(repo: ProjectRepo, remote: str, branch: str) -> str:
    """Fetch ``branch`` from ``remote``; return the sha of its tip."""
    repo.run(
        "fetch", "--quiet", "--no-tags", remote, f"refs/heads/{branch}",
        what=f"fetching {remote}/{branch}", env=NETWORK_ENV, timeout=NETWORK_TIMEOUT,
    )  # fmt: skip
    return repo.resolve("FETCH_HEAD")


def move_head(repo: ProjectRepo, old: str, new: str, *, reason: str) -> None:
    """Move HEAD (and its branch) from ``old`` to ``new``, updating the work tree and index like a
    branch switch: only paths that differ between the two commits change, and local edits to
    those paths stop the move before anything is written."""
    if old == new:
        return
    # Stale stat data would make read-tree take an unchanged file for a local edit.
    repo.execute("update-index", "-q", "--refresh")
    done = repo.execute("read-tree", "-m", "-u", old, new)
    if not done.ok:
        raise GitStoreError(
            f"cannot move HEAD to {new[:12]}: uncommitted changes in the work tree would be "
            f"overwritten; commit or stash them: {done.stderr.strip()}"
        )
    moved = repo.execute("update-ref", "-m", reason, "HEAD", new, old)
    if not moved.ok:
        repo.execute("read-tree", "-m", "-u", new, old)  # put the files back; HEAD did not move
        raise moved.error("HEAD moved during the update")


def _current_branch(repo: ProjectRepo) -> str:
    name = repo.branch()
    if name is None:
        raise GitStoreError("HEAD is detached: name the branch in config (git.branch)")
    return name
