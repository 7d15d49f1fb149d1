"""Crash-safe file writes for the status files.

Called at the end of a pass, after ``apply``, to render ``dispatch/state.json``,
``progress/env_*.json``, escalations and results (whole-file replace), and to append to
``progress/lab.log`` (one line per transition). A power cut leaves either the old file or the new
one, never a torn mix: the bytes go to a temporary file in the same directory, are fsynced, and
``os.replace`` swaps it in; the directory is fsynced after so the rename itself survives.

OSError propagates unchanged: a disk that refuses a write is not something a pass can retry around.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

StrPath = str | os.PathLike[str]


def atomic_write_bytes(path: StrPath, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; parent directories are created.

    A new file gets the usual ``0o666 & ~umask`` mode; an existing file keeps its mode.
    """
    target = Path(path)
    _injected_write_fault(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # O_EXCL with a random name: never follow or clobber someone else's file; 0o666 lets the
    # umask decide the mode exactly as for a file written the ordinary way.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        try:
            _write_all(fd, data)
            with contextlib.suppress(FileNotFoundError):
                os.fchmod(fd, stat.S_IMODE(os.stat(target).st_mode))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def atomic_write_text(path: StrPath, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8, newlines as given) atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def append_line(path: StrPath, line: str) -> None:
    """Append one line (a newline is added) to ``path`` and fsync it.

    ``O_APPEND`` makes the single ``write`` land at the end even with other appenders, so lines
    never interleave. ``line`` must not contain a newline: one line is one event.
    """
    if "\n" in line or "\r" in line:
        raise ValueError(f"append_line: a line must not contain a newline: {line!r}")
    target = Path(path)
    _injected_write_fault(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        _write_all(fd, (line + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # some filesystems do not allow opening a directory; the rename still happened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- fault injection (tests/chaos) ------------------------------------------------------------
# ``RECONCILER_FAIL_WRITE=<suffix>[,<suffix>...]``: a write whose path ends with one of the
# suffixes (e.g. ``dispatch/state.json``) fails as on a full disk. Unset in normal use.


def _injected_write_fault(target: Path) -> None:
    spec = os.environ.get("RECONCILER_FAIL_WRITE")
    if spec and any(s and target.as_posix().endswith(s) for s in spec.split(",")):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))


# --- end of fault injection --------------------------------------------------------------------
