"""Bounded reads of what a target sends: command output and result files.

A target is not trusted (``docs/security.md``): its answer to a command may be endless and a
"result file" may be a symlink to ``/dev/zero``. Both transports read through these helpers, so
memory and disk stay bounded by ``policies.limits`` whatever the target does.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

from reconciler.errors import OutputTooLarge, RefusedFile, RemoteFileMissing, TransportError

DEFAULT_OUTPUT_BYTES = 64 * 1024 * 1024
"""The cap on a command's stdout (and, separately, stderr) when the caller names none."""
CHUNK = 1024 * 1024


def size_text(n: int) -> str:
    """``16 MiB``, ``512 KiB``, ``100 bytes``."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def too_large(what: str, cap: int) -> str:
    return f"{what} larger than {size_text(cap)} cap"


async def read_capped(read: Callable[[int], Awaitable[bytes]], cap: int, what: str) -> bytes:
    """Everything ``read`` yields until EOF; ``OutputTooLarge`` as soon as it passes ``cap`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        data = await read(65536)
        if not data:
            return b"".join(chunks)
        size += len(data)
        if size > cap:
            raise OutputTooLarge(too_large(what, cap))
        chunks.append(data)


def copy_regular(src: Path, dst: Path, cap: int | None, what: str = "result file") -> int:
    """Copy ``src`` to ``dst`` when it is a regular file (opened without following a symlink) of
    at most ``cap`` bytes; returns the size. ``RefusedFile`` otherwise (``dst`` may then hold a
    partial copy: the caller's temp file, which it removes)."""
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RefusedFile(f"{what} {src} is a symlink, not a regular file") from exc
        if exc.errno == errno.ENOENT:
            raise RemoteFileMissing(f"{what} {src} does not exist") from exc
        raise TransportError(f"{what} {src}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd)
        if not stat.S_ISREG(mode.st_mode):
            raise RefusedFile(f"{what} {src} is not a regular file")
        if cap is not None and mode.st_size > cap:
            raise RefusedFile(too_large(what, cap))
        copied = 0
        with open(dst, "wb") as out:
            while chunk := f.read(CHUNK):
                copied += len(chunk)
                if cap is not None and copied > cap:
                    raise RefusedFile(too_large(what, cap))
                out.write(chunk)
    return copied
