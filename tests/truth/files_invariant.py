"""Invariant (c) of issue 14: no file of ours is left untracked and unignored in the project.

``stray_files(project)`` lists the files under the reconciler's paths (``dispatch/``,
``progress/``, ``experiments/``, ``.reconciler/``) that ``git status --porcelain --ignored`` shows as
untracked (``??``) — neither committed nor ignored. A status write killed half-way used to leave
one (``experiments/logs/.<id>.md.<pid>.<hex>.tmp``), which every later pass reported as an
uncommitted change and which a person's ``git add -A`` would commit. Pure helper: it reads git,
changes nothing. Note that a person's uncommitted new file under ``dispatch/`` or ``experiments/``
(a spec not committed yet) shows here too: call it on a project where people commit their edits.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

OURS = ("dispatch/", "progress/", "experiments/", ".reconciler/")


def stray_files(project: Path) -> list[str]:
    """Project-relative paths of ours that are untracked and not ignored, sorted."""
    out = subprocess.run(
        ["git", "status", "--porcelain=v1", "-z", "--ignored=matching", "--untracked-files=all", "--", "."],
        cwd=project, capture_output=True, check=True, timeout=60,
    ).stdout.decode("utf-8", "surrogateescape")  # fmt: skip
    prefix = subprocess.run(
        ["git", "rev-parse", "--show-prefix"], cwd=project, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()  # porcelain paths are relative to the repository's top, the project may lie below it
    stray: list[str] = []
    fields = out.split("\0")
    i = 0
    while i < len(fields):
        record = fields[i]
        i += 1
        if len(record) < 4:
            continue
        code, path = record[:2], record[3:]
        if "R" in code or "C" in code:  # a rename's source follows as its own field
            i += 1
        if code != "??" or not path.startswith(prefix):
            continue
        path = path[len(prefix) :]
        if path.startswith(OURS):
            stray.append(path)
    return sorted(stray)
