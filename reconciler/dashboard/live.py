"""Live updates: watch the project's git ref, and tell every open page when it moves.

``HeadWatcher`` reads where HEAD points every ``interval`` seconds straight from the git
directory (``HEAD``, the loose ref, ``packed-refs``: a few small reads, no subprocess), so any
commit (a pass's status commit, a decision, a person's commit, a pull) is seen within
``interval``. On a change it rebuilds the snapshot first, then publishes ``{"type": "commit"}``
through the ``Broadcaster``, whose subscribers are the SSE streams of open pages. A change of the
newest counters and progress (``.reconciler/volatile.json``, never committed) is published the same
way, with the same sha.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.dashboard.source import volatile_stamp
from reconciler.errors import ReconcilerError
from reconciler.gitstore.repo import ProjectRepo

Event = dict[str, Any]


class Broadcaster:
    """Fan-out to subscriber queues; a subscriber that falls ``limit`` events behind is dropped."""

    def __init__(self, limit: int = 100) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._subscribers: set[queue.Queue[Event | None]] = set()

    def subscribe(self) -> queue.Queue[Event | None]:
        q: queue.Queue[Event | None] = queue.Queue(maxsize=self.limit)
        with self._lock:
            self._subscribers.add(q)
        return q

    def unsubscribe(self, q: queue.Queue[Event | None]) -> None:
        with self._lock:
            self._subscribers.discard(q)

    def publish(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for q in subscribers:
            try:
                q.put_nowait(event)
            except queue.Full:
                self.unsubscribe(q)

    def close(self) -> None:
        """Wake every stream so that it ends (``None`` is the end marker)."""
        with self._lock:
            subscribers, self._subscribers = list(self._subscribers), set()
        for q in subscribers:
            try:
                q.put_nowait(None)
            except queue.Full:
                continue

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._subscribers)


class RefReader:
    """Where HEAD points, read from the git directory's files (falls back to ``git rev-parse``)."""

    def __init__(self, project_dir: Path) -> None:
        self.project_dir = project_dir
        with ProjectRepo(project_dir) as repo:
            out = repo.run("rev-parse", "--absolute-git-dir", "--git-common-dir", what="git rev-parse --git-dir")
        git_dir, common = out.splitlines()[:2]
        self.git_dir = Path(git_dir)
        self.common_dir = (self.git_dir / common).resolve() if not Path(common).is_absolute() else Path(common)

    def head(self) -> str | None:
        try:
            text = (self.git_dir / "HEAD").read_text(encoding="utf-8").strip()
        except OSError:
            return self._rev_parse()
        if not text.startswith("ref: "):
            return text or None
        ref = text[5:].strip()
        for base in (self.git_dir, self.common_dir):
            try:
                sha = (base / ref).read_text(encoding="utf-8").strip()
            except OSError:
                continue
            if sha:
                return sha
        return self._packed(ref)

    def _packed(self, ref: str) -> str | None:
        try:
            lines = (self.common_dir / "packed-refs").read_text(encoding="utf-8").splitlines()
        except OSError:
            return None  # an unborn branch
        for line in lines:
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref:
                return parts[0]
        return None

    def _rev_parse(self) -> str | None:
        try:
            with ProjectRepo(self.project_dir) as repo:
                return repo.resolve_or_none("HEAD")
        except ReconcilerError:
            return None


class HeadWatcher(threading.Thread):
    """Polls HEAD; on a change calls ``on_change(sha)`` (which rebuilds the snapshot) and then
    publishes the commit to the page streams."""

    def __init__(
        self,
        reader: RefReader,
        broadcaster: Broadcaster,
        on_change: Callable[[str | None], object],
        interval: float = 0.5,
    ) -> None:
        super().__init__(name="dashboard-head-watcher", daemon=True)
        self.reader = reader
        self.broadcaster = broadcaster
        self.on_change = on_change
        self.interval = interval
        self.stopped = threading.Event()
        self.current = reader.head()
        self.volatile = volatile_stamp(reader.project_dir)

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            sha = self.reader.head()
            stamp = volatile_stamp(self.reader.project_dir)
            if sha == self.current and stamp == self.volatile:
                continue
            self.current, self.volatile = sha, stamp
            with contextlib.suppress(ReconcilerError):  # the page shows it when it asks; next change retries
                self.on_change(sha)
            self.broadcaster.publish({"type": "commit", "commit": sha})

    def stop(self) -> None:
        self.stopped.set()
