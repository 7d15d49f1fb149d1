"""One experiment's history, rebuilt from the commits of ``dispatch/state.json``.

Backs ``reconcile log EXP``: every transition is a commit (design section 1), so the audit trail
is ``git log dispatch/state.json``. One ``git log`` lists the commits that touched the file
(oldest first); each version is read from GitPython's object database (one persistent
``cat-file`` process, not a subprocess per commit) and compared with the previous readable one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from reconciler.errors import GitStoreError
from reconciler.gitstore.repo import ProjectRepo
from reconciler.gitstore.tree import GitTree
from reconciler.model.archive import ArchivedPhase
from reconciler.model.status import StateFile, Status, StatusEntry

STATE_PATH = "dispatch/state.json"
DECISIONS_PATH = "dispatch/decisions.yaml"


@dataclass(frozen=True)
class Transition:
    """A commit where the experiment's status, attempt, failure class or command changed."""

    commit_sha: str
    commit_time: str
    """Committer time, ISO 8601 with zone."""
    from_status: Status | None
    """``None``: the experiment first appears in this commit."""
    to_status: Status | None
    """``None``: the experiment left the state file in this commit."""
    attempt: int
    target: str | None
    host: str | None
    gpu: int | None
    retry_count: int
    failure_class: str | None
    command_changed: bool
    message_line: str
    """The commit's subject."""


@dataclass(frozen=True)
class Unreadable:
    """A version of the state file that could not be read; the walk goes on past it."""

    commit_sha: str
    commit_time: str
    reason: str
    message_line: str


def experiment_history(
    repo: ProjectRepo, exp_id: str, *, rev: str = "HEAD", state_path: str = STATE_PATH
) -> Iterator[Transition | Unreadable]:
    """Yield ``exp_id``'s transitions (and unreadable versions) in commit order, oldest first."""
    path = repo.repo_path(state_path)
    out = repo.run(
        "log", "--topo-order", "--reverse", "--format=%H%x00%cI%x00%s%x1e", rev, "--", path,
        what=f"git log {state_path}", strip=False,
    )  # fmt: skip
    previous: StatusEntry | None = None
    archived: ArchivedPhase | None = None  # the archive record ``previous`` was last read under
    for raw in out.split("\x1e"):
        record = raw.strip("\n")
        if not record:
            continue
        sha, ctime, subject = record.split("\0", 2)
        state = _read_state(repo, sha, state_path)
        if isinstance(state, str):
            yield Unreadable(sha, ctime, state, subject)
            continue
        entry = state.get(exp_id)
        if entry is None and previous is not None:  # archived? (read again only when re-archived)
            where = next((a for a in state.archived if a.phase == previous.phase), None)
            if where is not None and where == archived:
                entry = previous
            elif where is not None:
                entry, archived = _archived_entry(repo, sha, where, exp_id), where
        if _key(entry) != _key(previous):
            yield _transition(sha, ctime, subject, previous, entry)
        previous = entry


def _archived_entry(repo: ProjectRepo, sha: str, record: ArchivedPhase, exp_id: str) -> StatusEntry | None:
    """``exp_id``'s entry in the archive file of ``record`` at ``sha`` (``None``: not there)."""
    try:
        data = GitTree(repo.handle, sha, prefix=repo.prefix).read_bytes(record.file)
        return StateFile.loads(data).get(exp_id) if data is not None else None
    except (GitStoreError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _read_state(repo: ProjectRepo, sha: str, state_path: str) -> StateFile | str:
    """The parsed state file at ``sha``, or the reason it cannot be read."""
    tree = GitTree(repo.handle, sha, prefix=repo.prefix)
    try:
        text = tree.read_text(state_path)
    except GitStoreError as exc:  # a version that is not UTF-8 is reported, not fatal
        return f"{state_path} could not be read: {exc}"
    if text is None:
        return f"{state_path} was deleted"
    try:
        return StateFile.loads(text)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return f"{state_path} is not a valid state file: {type(exc).__name__}: {exc}"


def state_versions(
    repo: ProjectRepo, *, rev: str = "HEAD", state_path: str = STATE_PATH, limit: int = 200
) -> Iterator[tuple[str, bytes | None]]:
    """The committed versions of the state file, newest first, as ``(commit, bytes)`` (``None``:
    deleted there), at most ``limit``: where a pass looks for the last good one."""
    path = repo.repo_path(state_path)
    out = repo.run("log", f"--max-count={limit}", "--format=%H", rev, "--", path, what=f"git log {state_path}")
    for sha in out.split():
        try:
            yield sha, GitTree(repo.handle, sha, prefix=repo.prefix).read_bytes(state_path)
        except GitStoreError:
            continue


def decisions_applied_before(
    repo: ProjectRepo, ids: Iterable[str], *, state_path: str = STATE_PATH, decisions_path: str = DECISIONS_PATH
) -> dict[str, str]:
    """Of ``ids`` (decisions the state file does not list as applied), those that a committed
    version of the state file did list, each with such a commit: history, not the editable file,
    says whether a decision was carried out. Only the commits since the decision first appeared in
    ``decisions_path`` are searched (``git log -S``), so a new decision costs a short walk."""
    found: dict[str, str] = {}
    state = repo.repo_path(state_path)
    for decision in ids:
        first = repo.run(
            "log", "--reverse", "--format=%H", f"-S{decision}", "HEAD", "--", repo.repo_path(decisions_path),
            what=f"git log {decisions_path}",
        ).split()  # fmt: skip
        since = [f"{first[0]}~1..HEAD"] if first and _has_parent(repo, first[0]) else ["HEAD"]
        changed = repo.run("log", "--format=%H", f'-S"{decision}"', *since, "--", state, what=f"git log {state_path}")
        for sha in changed.split():
            for rev in (sha, f"{sha}~1"):  # where it was added, or (removed there) just before
                listed = _read_state(repo, rev, state_path) if rev == sha or _has_parent(repo, sha) else None
                if isinstance(listed, StateFile) and decision in listed.decisions_applied:
                    found[decision] = sha
                    break
            if decision in found:
                break
    return found


def _has_parent(repo: ProjectRepo, sha: str) -> bool:
    return bool(repo.run("rev-list", "--parents", "-n", "1", sha, what="git rev-list").split()[1:])


def _key(entry: StatusEntry | None) -> tuple[object, ...] | None:
    if entry is None:
        return None
    return (entry.status, entry.attempt, entry.failure_class, entry.command)


def _ended_class(before: StatusEntry | None, after: StatusEntry | None) -> str | None:
    """The failure class of the attempt that ended in this commit, when the retry already started
    in the same pass (the entry itself no longer carries the class then)."""
    if before is None or after is None or after.attempt <= before.attempt:
        return None
    ended = [a for a in after.attempts if a.n == before.attempt]
    return ended[0].failure_class if ended else None


def _transition(
    sha: str, ctime: str, subject: str, before: StatusEntry | None, after: StatusEntry | None
) -> Transition:
    shown = after or before
    assert shown is not None  # _key differs, so at least one side exists
    return Transition(
        commit_sha=sha,
        commit_time=ctime,
        from_status=before.status if before else None,
        to_status=after.status if after else None,
        attempt=shown.attempt,
        target=shown.target,
        host=shown.host,
        gpu=shown.gpu,
        retry_count=shown.retry_count,
        failure_class=shown.failure_class or _ended_class(before, after),
        command_changed=before is not None and after is not None and before.command != after.command,
        message_line=subject,
    )
