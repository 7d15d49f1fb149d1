"""The per-project lock: one ``reconcile`` writer at a time (invariant 4).

``engine`` takes it first thing in a pass (before loading anything) and holds it until the status
commit is pushed; ``reconcile resolve`` takes it too. It is an ``flock`` on
``<project>/.reconciler/lock``: the kernel drops it when the holder exits or dies, so a crashed
pass never leaves a stale lock behind. The file keeps the holder's pid, host, start time and argv
so that the second process can say who holds it; it is never deleted (deleting an flock'ed file
lets two processes lock two different inodes).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType

from reconciler.confine import open_file
from reconciler.errors import LockHeld

LOCK_RELPATH = ".reconciler/lock"


class ProjectLock:
    """``with ProjectLock(project_dir): ...``; raises ``LockHeld`` at once when another holds it."""

    def __init__(self, project_dir: str | os.PathLike[str], argv: Sequence[str] | None = None) -> None:
        self.path = Path(project_dir) / LOCK_RELPATH
        self._argv = list(sys.argv if argv is None else argv)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this object")
        # os.open is close-on-exec by default: runs launched by this process must not inherit
        # the lock, or it would outlive the pass. Confined: a symlinked .reconciler/ or lock is
        # refused (UnsafePathError), never followed out of the project.
        fd = open_file(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe_holder(_read_fd(fd))
            os.close(fd)
            raise LockHeld(str(self.path), holder) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        info = {
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "started": datetime.now().astimezone().isoformat(timespec="seconds"),
            "argv": self._argv,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info, sort_keys=True) + "\n").encode("utf-8"), 0)
        os.fsync(fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # no stale holder text for the next reader
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> ProjectLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


@contextlib.contextmanager
def waiting_lock(project_dir: str | os.PathLike[str], patience: float = 60.0) -> Iterator[ProjectLock]:
    """The project lock for a command (``resolve``, ``export``, the dashboard's buttons), waited for
    up to ``patience`` seconds: a watcher holds it only during a pass. ``LockHeld`` after that."""
    lock = ProjectLock(project_dir)
    deadline = time.monotonic() + patience
    while True:
        try:
            lock.acquire()
            break
        except LockHeld:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        yield lock
    finally:
        lock.release()


def describe_holder(text: str) -> str:
    """One line for people: ``pid 123 on lab1 since 2026-...+01:00: reconcile --once``."""
    try:
        info = json.loads(text)
        argv = " ".join(str(a) for a in info.get("argv") or ())
        who = f"pid {info['pid']} on {info['hostname']} since {info['started']}"
        return f"{who}: {argv}" if argv else who
    except (ValueError, TypeError, KeyError, AttributeError):
        stripped = text.strip()
        # Between the holder's flock and its write the file is empty.
        return stripped or "unknown holder (it is starting or did not record itself)"


def _read_fd(fd: int) -> str:
    try:
        return os.pread(fd, 65536, 0).decode("utf-8", errors="replace")
    except OSError:
        return ""
