"""What a result path may be (``docs/file-contract.md``): relative, normalised, no hidden part,
under ``experiments/results/``. Shared by the spec loader (``load.paths``, with placeholders) and
the state file's check (``model.statecheck``), so an entry of ``dispatch/state.json`` cannot name
a path a spec could not."""

from __future__ import annotations

import posixpath
import re

RESULTS_DIR = "experiments/results"
"""The folder every result file lands in: a result path names nothing git or the reconciler own
(``.gitignore``, ``.git/``, ``.reconciler/``, ``dispatch/``, ...)."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PLAIN = re.compile(r"experiments/results(?:/[A-Za-z0-9_-][A-Za-z0-9_.-]*)+")
"""The usual result path, certainly fine (checked first: a state file holds thousands)."""


def result_path_error(path: str, shown: str | None = None) -> str | None:
    """Why ``path`` is not a result path, or ``None``; messages name ``shown`` (default ``path``)."""
    if _PLAIN.fullmatch(path):
        return None
    shown = path if shown is None else shown
    if path.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", path) or "\\" in path:
        return f"'{shown}' must be a relative path inside the project"
    if _CONTROL.search(path):
        return f"{shown!r} holds a control character"
    norm = posixpath.normpath(path)
    if norm == ".." or norm.startswith("../"):
        return f"'{shown}' escapes the project"
    if norm == "." or path.endswith("/"):
        return f"'{shown}' must name a file"
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return f"'{shown}' must be a normalised path (no '..', '.' or empty parts)"
    hidden = next((part for part in parts if part.startswith(".")), None)
    if hidden is not None:
        return f"'{shown}' names a hidden file or folder ('{hidden}'), which results may not write to"
    if not path.startswith(RESULTS_DIR + "/"):
        return f"'{shown}' must be under {RESULTS_DIR}/ (where results land)"
    return None
