"""Pure builder and parser of a run's output read (``reconcile logs``): one remote command that
reads ``<run_dir>/stdout.log`` from a byte offset, and says whether the run has ended.

The reader is a few lines of standard-library Python run with ``-S -c`` (nothing is installed on
the target). It reads only a regular file that the target's user owns, opened without following a
symlink (a job may replace its run dir's files with links to ``/etc/shadow`` or ``/dev/zero``: the
probe refuses those the same way), at most ``limit`` bytes from ``offset`` (negative: that many
bytes from the end, for a tail). It prints one JSON line: ``{"size", "start", "end", "text",
"exit_code", "refused", "missing"}``; ``exit_code`` is the content of the run's
``exit_code`` file (the wrapper writes it when the job ends), ``null`` while it runs.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from reconciler.backends.scripts import python_words
from reconciler.errors import TransportError

LOG_NAME = "stdout.log"
MAX_CHUNK = 256 * 1024
"""Bytes read per command (a follow reads the rest on its next poll)."""

_READER = r"""
import json, os, stat, sys
run_dir, offset, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def owned(name):
    path = os.path.join(run_dir, name)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None, os.path.islink(path)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
        os.close(fd)
        return None, True
    return fd, False
out = {"size": 0, "start": 0, "end": 0, "text": "", "exit_code": None, "refused": False, "missing": False}
fd, refused = owned("stdout.log")
out["refused"] = refused
out["missing"] = fd is None and not refused
if fd is not None:
    size = os.fstat(fd).st_size
    start = max(0, size + offset) if offset < 0 else min(offset, size)
    os.lseek(fd, start, 0)
    data = os.read(fd, min(limit, max(0, size - start)))
    os.close(fd)
    out.update(size=size, start=start, end=start + len(data), text=data.decode("utf-8", "replace"))
fd, _ = owned("exit_code")
if fd is not None:
    out["exit_code"] = os.read(fd, 64).decode("ascii", "replace").strip()
    os.close(fd)
sys.stdout.write(json.dumps(out) + "\n")
"""


@dataclass(frozen=True)
class LogChunk:
    """What one read found."""

    size: int
    """The log's size in bytes when read."""
    start: int
    """The offset ``text`` starts at."""
    end: int
    """The offset after the bytes read (where the next read of a follow starts)."""
    text: str
    exit_code: int | None
    """The run's exit code once it ended."""
    refused: bool = False
    """The log is a symlink, not a regular file, or not the target user's: not read."""
    missing: bool = False


def read_command(run_dir: str, offset: int, limit: int, python: str) -> str:
    """The remote command reading ``run_dir``'s log from ``offset`` (negative: from the end)."""
    args = " ".join(shlex.quote(a) for a in (run_dir, str(offset), str(min(limit, MAX_CHUNK))))
    return f"exec {python_words(python)} -S -c {shlex.quote(_READER)} {args}\n"


def parse_chunk(stdout: str) -> LogChunk:
    line = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    try:
        doc = json.loads(line)
    except ValueError as exc:
        raise TransportError(f"unreadable answer of the log read: {line[:200]!r}") from exc
    if not isinstance(doc, dict):
        raise TransportError(f"unreadable answer of the log read: {line[:200]!r}")
    code = doc.get("exit_code")
    exit_code = int(code) if isinstance(code, str) and code.lstrip("-").isdigit() else None
    return LogChunk(
        size=int(doc.get("size") or 0),
        start=int(doc.get("start") or 0),
        end=int(doc.get("end") or 0),
        text=str(doc.get("text") or ""),
        exit_code=exit_code,
        refused=bool(doc.get("refused")),
        missing=bool(doc.get("missing")),
    )
