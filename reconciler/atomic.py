"""Crash-safe file writes for the status files.

Called at the end of a pass, after ``apply``, to render ``dispatch/state.json``,
``progress/env_*.json``, escalations and results (whole-file replace), and to append to
``progress/lab.log`` (one line per transition). A power cut leaves either the old file or the new
one, never a torn mix: the bytes go to a temporary file, are fsynced, and ``os.replace`` swaps it
in; the directory is fsynced after so the rename itself survives. Every write is confined to the
project (``reconciler.confine``): no symlinked directory on the way, no symlink at the name.

Where the temporary file lives: inside a project (the nearest ancestor directory holding
``.reconciler/.gitignore``, which a pass creates, not above the one holding ``.git``), under
``<project>/.reconciler/tmp/`` as ``<name>.<pid>.<hex>.tmp``, so a write killed half-way leaves
nothing visible to ``git status`` or a person's ``git add -A``, whatever the project's
``.gitignore`` says; elsewhere (or when the rename would cross filesystems) beside the target as
``.<name>.<pid>.<hex>.tmp``. ``sweep_temp_files`` removes the ones a killed writer left (a pass
calls it under the project lock).

OSError propagates unchanged: a disk that refuses a write is not something a pass can retry around.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import re
import secrets
import stat
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from reconciler import confine

StrPath = str | os.PathLike[str]


def atomic_write_bytes(path: StrPath, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; parent directories are created.

    Inside a project every directory from its root down to ``path`` is reached without following
    a symlink, and ``path`` itself must not be one (``reconciler.confine``): a committed or
    swapped-in symlink raises ``UnsafePathError`` and nothing is written.
    A new file gets the usual ``0o666 & ~umask`` mode; an existing file keeps its mode.
    """
    target = Path(path)
    _injected_write_fault(target)
    root = confine.project_root(target)
    with confine.parent_dir(target, root=root) as (dir_fd, name):
        scratch = _scratch(root, target)
        if root is not None and scratch is not None:
            try:
                scratch_fd = confine.open_dir(root, scratch)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOTDIR, errno.EACCES, errno.EROFS):
                    raise
            else:
                try:
                    _write_and_replace(
                        scratch_fd, f"{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp", dir_fd, name, data
                    )
                    return
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.ENOTDIR, errno.EACCES, errno.EROFS):
                        raise
                finally:
                    os.close(scratch_fd)
        _write_and_replace(dir_fd, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp", dir_fd, name, data)


def _scratch(root: Path | None, target: Path) -> tuple[str, ...] | None:
    """``<project>/.reconciler/tmp`` as parts under ``root``: the nearest ancestor of ``target``
    (not above ``root``, the directory holding ``.git``) with the self-ignoring ``.reconciler/``."""
    if root is None:
        return None
    base, parts = confine.split(target, root)
    if base != root:
        return None
    for k in range(len(parts) - 1, -1, -1):
        if os.path.lexists(root.joinpath(*parts[:k], SCRATCH, ".gitignore")):
            return (*parts[:k], SCRATCH, "tmp")
    return None


def _write_and_replace(tmp_dir: int, tmp: str, dir_fd: int, name: str, data: bytes) -> None:
    # O_EXCL with a random name: never follow or clobber someone else's file; 0o666 lets the
    # umask decide the mode exactly as for a file written the ordinary way. Both names are
    # relative to directories opened without following a symlink; the rename replaces a name,
    # never what a link there would point to.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666, dir_fd=tmp_dir)
    try:
        try:
            _write_all(fd, data)
            with contextlib.suppress(FileNotFoundError):
                os.fchmod(fd, stat.S_IMODE(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=tmp_dir, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=tmp_dir)
        raise
    _sync_dir(dir_fd)


_deferred: contextvars.ContextVar[dict[tuple[int, int], int] | None] = contextvars.ContextVar(
    "reconciler_deferred_dir_syncs", default=None
)
"""Inside ``dirs_synced_once`` (this thread's): the directories whose renames still need their
fsync, by (device, inode), each an open descriptor of its own."""


def _sync_dir(dir_fd: int) -> None:
    """Make a rename in ``dir_fd`` durable now, or once at the end of ``dirs_synced_once``."""
    pending = _deferred.get()
    if pending is None:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
        return
    st = os.fstat(dir_fd)
    if (st.st_dev, st.st_ino) not in pending:
        pending[(st.st_dev, st.st_ino)] = os.dup(dir_fd)


@contextlib.contextmanager
def dirs_synced_once() -> Iterator[None]:
    """Atomic writes inside the block fsync each file as always, but each directory once, at the
    end (a pass that writes 10,000 notes into one directory pays one directory flush, not
    10,000). Per thread: another thread's writes meanwhile sync as always."""
    if _deferred.get() is not None:  # nested: the outer block syncs
        yield
        return
    pending: dict[tuple[int, int], int] = {}
    token = _deferred.set(pending)
    try:
        yield
    finally:
        _deferred.reset(token)
        for fd in pending.values():
            with contextlib.suppress(OSError):
                os.fsync(fd)
            os.close(fd)


SCRATCH = ".reconciler"
TMP_DIR = f"{SCRATCH}/tmp"
STALE_SECONDS = 600.0
"""A temporary file this old is abandoned whoever wrote it (a write of ours takes milliseconds)."""
_IN_SCRATCH = re.compile(r"\.?(?P<name>.+)\.(?P<pid>[0-9]+)\.[0-9a-f]{8}\.tmp(\.[0-9a-f]{8}\.part)?")
"""A temp file in ``.reconciler/tmp/``: an atomic write's, or a result being copied from a target
(``incoming_path``, and the ``.part`` file the transport writes beside it)."""
_BESIDE = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[0-9a-f]{8}\.tmp")


def sweep_temp_files(project_dir: Path, dirs: Iterable[str], *, now: float | None = None) -> list[str]:
    """Remove the temporary files a killed write of ours left: those in ``.reconciler/tmp/`` and
    those named ``.<name>.<pid>.<hex>.tmp`` directly in ``dirs`` (project-relative; a trailing
    ``/**`` includes subdirectories), whose writer is not alive or which are older than
    ``STALE_SECONDS``. Anything else is left alone. Returns the project-relative paths removed."""
    now = time.time() if now is None else now
    found: list[tuple[Path, re.Pattern[str]]] = [(project_dir / TMP_DIR, _IN_SCRATCH)]
    for rel in dirs:
        base = project_dir / rel.removesuffix("/**")
        found.append((base, _BESIDE))
        if rel.endswith("/**") and base.is_dir():
            found.extend((sub, _BESIDE) for sub in base.rglob("*") if sub.is_dir() and not sub.is_symlink())
    removed: list[str] = []
    for directory, pattern in found:
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            match = pattern.fullmatch(name)
            path = directory / name
            if match is None or not _abandoned(path, int(match["pid"]), now):
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path.relative_to(project_dir).as_posix())
    return sorted(removed)


def _abandoned(path: Path, pid: int, now: float) -> bool:
    try:
        st = path.lstat()
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    return now - st.st_mtime > STALE_SECONDS or not pid_alive(pid)


def pid_alive(pid: int) -> bool:
    """A process with this pid exists (one we may not signal counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def atomic_write_text(path: StrPath, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8, newlines as given) atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def append_line(path: StrPath, line: str) -> None:
    """Append one line (a newline is added) to ``path`` and fsync it.

    ``O_APPEND`` makes the single ``write`` land at the end even with other appenders, so lines
    never interleave. ``line`` must not contain a newline: one line is one event.
    """
    append_lines(path, (line,))


def append_lines(path: StrPath, lines: Iterable[str]) -> None:
    """Append ``lines`` (a newline added to each) to ``path`` in one ``write`` and one fsync: a
    pass that records 30,000 transitions pays one disk flush, not 30,000. No line may contain a
    newline (one line is one event); nothing is written when one does."""
    data = []
    for line in lines:
        if "\n" in line or "\r" in line:
            raise ValueError(f"append_line: a line must not contain a newline: {line!r}")
        data.append(line + "\n")
    if not data:
        return
    target = Path(path)
    _injected_write_fault(target)
    fd = confine.open_file(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        _write_all(fd, "".join(data).encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


# --- fault injection (tests/chaos) ------------------------------------------------------------
# ``RECONCILER_FAIL_WRITE=<suffix>[,<suffix>...]``: a write whose path ends with one of the
# suffixes (e.g. ``dispatch/state.json``) fails as on a full disk. Unset in normal use.


def _injected_write_fault(target: Path) -> None:
    spec = os.environ.get("RECONCILER_FAIL_WRITE")
    if spec and any(s and target.as_posix().endswith(s) for s in spec.split(",")):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))


# --- end of fault injection --------------------------------------------------------------------
