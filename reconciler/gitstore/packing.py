"""Keep the project's object store packed, by bytes as well as by count.

Status commits are plumbing (``commit-tree``), which never packs. Each changing pass writes
``dispatch/state.json`` whole as a loose object (zlib at git's loose level, 1): at 30,000 live
entries that is ~1.8 MB a pass. Git's own ``gc --auto`` counts loose objects (6,700 by default:
several hundred status commits), not their bytes, so at that scale a project would grow by a
gigabyte or more of loose objects before git packed it. Packed, each version of the file is a
delta of a few KiB against the one before.

``keep_packed`` runs after each status commit:

- past ``git.pack_loose_mib`` MiB of loose objects (one directory listing per fan-out directory),
  it starts ``git repack -d --geometric=2`` in the background: the loose objects go into a new
  pack and the packs roll up geometrically (each at least twice the size of the next), so the work
  per pass stays bounded while the state file's versions end up as deltas of each other;
- otherwise it runs ``git gc --auto`` (git's own housekeeping, which detaches when it has work).

One repack at a time, and never beside git's own gc: the repack holds an ``flock`` on
``<git dir>/reconciler-repack.lock`` through a descriptor it inherits, so the lock goes with the
process however it ends (no stale pid file after a crash); a running ``gc`` (its ``gc.pid``)
defers ours to a later pass. What the repack printed is kept in ``reconciler-repack.log`` beside
the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
from pathlib import Path

from reconciler.atomic import pid_alive
from reconciler.gitstore import boundary
from reconciler.gitstore.repo import ProjectRepo

LOCK_NAME = "reconciler-repack.lock"
LOG_NAME = "reconciler-repack.log"
_started: list[subprocess.Popen[bytes]] = []
"""Repacks this process started, polled (reaped) by the next call."""
REPACK_ARGS = ("repack", "-d", "-q", "--geometric=2", "--threads=1", "--window-memory=128m")
"""One thread: the repack runs beside the passes, on a machine whose cores are the runs'. The
window capped at 128 MiB: the state file's versions sort next to each other, so each still finds
its delta (measured at 100,000 experiments: the same pack, 220 MiB at the peak instead of 570)."""


def keep_packed(repo: ProjectRepo, loose_mib: float) -> bool:
    """After a status commit: start a background repack when the loose objects pass ``loose_mib``
    MiB (0: never; git's ``gc --auto`` only), else let ``gc --auto`` do its housekeeping. True
    when a repack was started."""
    _started[:] = [proc for proc in _started if proc.poll() is None]
    common = _common_dir(repo)
    try:
        fd = _try_lock(common / LOCK_NAME)
    except OSError:
        fd = -1  # no lock to be had (a read-only or odd git dir): housekeeping is git's alone
    if fd is None:
        return False  # a repack of ours is still running; gc waits for it too
    if fd >= 0:
        try:
            if loose_mib > 0 and not _gc_running(common) and loose_bytes(common / "objects") > loose_mib * 2**20:
                _spawn_repack(repo, fd, common / LOG_NAME)
                return True
        except OSError:
            pass  # the commit is made; packing is housekeeping and never fails a pass: gc below
        finally:
            os.close(fd)  # the child keeps its own copy, and with it the lock
    repo.execute("gc", "--auto", "--quiet")
    return False


def loose_bytes(objects: Path) -> int:
    """The bytes of the loose objects under ``objects`` (the 256 fan-out directories)."""
    total = 0
    for fan in range(256):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(objects / f"{fan:02x}") as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):
                    total += entry.stat(follow_symlinks=False).st_size
    return total


def wait_for_repack(repo: ProjectRepo, timeout: float) -> bool:
    """Wait until no repack of ours runs (for tests and benchmarks); False on timeout."""
    path = _common_dir(repo) / LOCK_NAME
    deadline = time.monotonic() + timeout
    while True:
        fd = _try_lock(path)
        if fd is not None:
            os.close(fd)
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _common_dir(repo: ProjectRepo) -> Path:
    """The directory that holds the objects (a linked worktree shares its main one's)."""
    return Path(repo.handle.common_dir)


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive ``flock`` on ``path``; ``None`` when another holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _gc_running(common: Path) -> bool:
    """Whether git's own gc holds ``gc.pid`` (``<pid> <host>``; a stale file from a dead gc or
    another host's does not count: git itself ignores it after 12 hours)."""
    try:
        pid, _, host = (common / "gc.pid").read_text(encoding="utf-8", errors="replace").strip().partition(" ")
    except OSError:
        return False
    if host and host != os.uname().nodename:
        return True  # another machine's gc on a shared disk: leave it be
    return pid.isdigit() and pid_alive(int(pid))


def _spawn_repack(repo: ProjectRepo, lock_fd: int, log: Path) -> None:
    """``git repack`` in its own session, holding the lock through an inherited descriptor, not
    waited for (a ``--once`` controller exits while it runs; watch mode goes on)."""
    env = {**os.environ, **boundary.BASE_ENV, "GIT_TERMINAL_PROMPT": "0"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [boundary.git_executable(), *REPACK_ARGS],
            cwd=repo.root,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            pass_fds=(lock_fd,),
            start_new_session=True,
        )
    _started.append(proc)
