"""Watch mode: a pass every ``poll_interval`` for each project, and within about a second of a
new commit that touches a project's desired state (watchdog on the repository's ``.git``).

SIGINT/SIGTERM stop the loop after the current pass (which releases its lock as usual). Each
project keeps its own lock; a project whose lock is held by another process is skipped for
that round. Each project keeps its SSH connections open from one pass to the next
(``targets.KeptConnections``): an idle pass costs one command per host, no connection setup; a
connection that dropped is reopened by the next command, and a pass that failed on a bug
starts the next one with fresh connections.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from reconciler.engine import reconcile_once
from reconciler.errors import LockHeld, ReconcilerError, SchemaError, describe_bug
from reconciler.gitstore.repo import ProjectRepo
from reconciler.liveline import LiveLine, counts_line
from reconciler.model.status import Status
from reconciler.passmetrics import committed_poll_interval
from reconciler.targets import KeptConnections

DESIRED_PREFIXES = ("config/", "dispatch/", "experiments/")


class _Wake(FileSystemEventHandler):
    READS = ("opened", "closed_no_write")
    """Event types of a file read, not changed: the watcher's own look at ``HEAD`` every round
    would otherwise wake the next round at once (a spin of rounds between passes)."""

    def __init__(self, wake: threading.Event) -> None:
        self.wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in self.READS:
            return
        path = str(event.src_path)
        if "/refs/" in path or path.endswith(("HEAD", "packed-refs")):
            self.wake.set()


def watch(
    projects: Sequence[Path],
    *,
    log: Callable[[str], None] | None = None,
    max_passes: int | None = None,
    until_settled: bool = False,
) -> int:
    """Run until signalled (or ``max_passes`` rounds, for tests). Returns an exit code.

    ``until_settled``: stop once every project has nothing left in flight (every experiment
    done, failed, cancelled or on hold); exit 0 when all are done or cancelled, else 1.
    Without ``log``, messages go to stderr, and on a terminal one live line below them shows each
    project's counts by status and when its next pass is due (``liveline``).
    """
    if log is None:
        with LiveLine() as line:
            return _watch(projects, line.log, max_passes, until_settled, line)
    return _watch(projects, log, max_passes, until_settled, None)


def _watch(
    projects: Sequence[Path],
    log: Callable[[str], None],
    max_passes: int | None,
    until_settled: bool,
    line: LiveLine | None,
) -> int:
    stop = threading.Event()
    wake = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del frame
        log(f"signal {signum}: stopping after the current pass")
        stop.set()
        wake.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    observer = Observer()
    repos: dict[Path, ProjectRepo] = {}
    for project in projects:
        repo = ProjectRepo(project)
        repos[project] = repo
        git_dir = Path(repo.git_dir)
        if git_dir.is_dir():
            observer.schedule(_Wake(wake), str(git_dir), recursive=True)
    observer.start()
    seen = {p: _head(r) for p, r in repos.items()}
    due = dict.fromkeys(projects, 0.0)
    settled: dict[Path, bool | None] = dict.fromkeys(projects)
    kept = {p: KeptConnections() for p in projects}
    counts: dict[Path, Counter[str]] = {p: Counter() for p in projects}
    rounds = 0
    try:
        while not stop.is_set():
            now = time.monotonic()
            for project, repo in repos.items():
                head = _head(repo)
                changed = head != seen[project] and _touches_desired(repo, seen[project], head)
                seen[project] = head
                if now >= due[project] or changed:
                    interval, settled[project], counts[project] = _one(project, log, kept[project])
                    # ``seen`` stays at the head from before the pass: the next round diffs
                    # across the pass's own status commit (ignored: reconciler-owned paths) and
                    # any desired-state commit that landed while the pass ran (not ignored).
                    due[project] = time.monotonic() + interval
                if stop.is_set():
                    break
            rounds += 1
            if max_passes is not None and rounds >= max_passes:
                break
            if until_settled and all(v is not None for v in settled.values()):
                return 0 if all(settled.values()) else 1
            wait = max(0.05, min(due.values()) - time.monotonic())
            if line is not None:
                line.update(_progress(counts, due))
            wake.wait(timeout=min(wait, 1.0))
            wake.clear()
    finally:
        observer.stop()
        observer.join(timeout=5)
        for connections in kept.values():
            connections.close()
        for repo in repos.values():
            repo.close()
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return 0


def _progress(counts: dict[Path, Counter[str]], due: dict[Path, float]) -> str:
    now = time.monotonic()
    parts = [
        f"{counts_line(p.resolve().name, counts[p])}, next pass in {max(0, round(due[p] - now))} s" for p in counts
    ]
    return "  |  ".join(parts) + "  (Ctrl-C stops after the current pass)"


def _one(
    project: Path, log: Callable[[str], None], kept: KeptConnections | None = None
) -> tuple[float, bool | None, Counter[str]]:
    """One pass; returns the project's poll interval (60 s when the config cannot be read),
    whether it has settled (``None``: still in flight; True: all done; False: needs a person),
    and its experiments' counts by status."""
    interval = 60.0
    settled: bool | None = None
    counts: Counter[str] = Counter()
    try:
        # the config alone (the pass loads the whole desired state, and refuses an invalid one)
        interval = committed_poll_interval(project) or interval
        result = reconcile_once(project, log=log) if kept is None else reconcile_once(project, log=log, kept=kept)
        for line in result.events:
            log(f"{project.name}: {line.line}")
        if result.commit:
            log(f"{project.name}: committed {result.commit[:10]}")
        counts = Counter(e.status.value for e in result.state.entries)
        statuses = {e.status for e in result.state.entries}
        if statuses <= {Status.DONE, Status.CANCELLED, Status.FAILED, Status.ON_HOLD}:
            settled = statuses <= {Status.DONE, Status.CANCELLED}
    except SchemaError as exc:
        log(f"{project}: invalid desired state, pass skipped:\n{exc}")
        settled = False
    except LockHeld as exc:
        log(f"{project}: {exc}; skipped")
    except ReconcilerError as exc:
        log(f"{project}: pass failed: {exc}")
    except OSError as exc:
        log(f"{project}: pass failed: {exc}")
    except Exception as exc:  # a bug: reported, and the next pass starts afresh (as a controller does)
        if os.environ.get("RECONCILER_DEBUG"):
            raise
        log(f"{project}: pass failed with an internal error (a bug, please report it): {describe_bug(exc)}")
        if kept is not None:
            kept.close()  # the next pass opens fresh connections
    return interval, settled, counts


def _head(repo: ProjectRepo) -> str | None:
    try:
        return repo.head_sha()
    except ReconcilerError:
        return None


def _touches_desired(repo: ProjectRepo, old: str | None, new: str | None) -> bool:
    """A new commit changed a desired-state file (not only the reconciler's own status files)."""
    if old is None or new is None:
        return True
    try:
        names = repo.run("diff", "--name-only", old, new, what="diff of new commits").splitlines()
    except ReconcilerError:
        return True
    for name in names:
        rel = repo.project_path(name)
        ours = rel == "dispatch/state.json" or (rel or "").startswith(("experiments/results/", "dispatch/archive/"))
        if rel and rel.startswith(DESIRED_PREFIXES) and not ours:
            return True
    return False
