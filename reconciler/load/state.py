"""Read the recorded status ``dispatch/state.json`` from a ``Tree``.

Used by the engine at the start of a pass (beside ``load_desired``) and by ``reconcile validate``.
A missing file is an empty status for the project. A file that does not parse, breaks its schema,
or repeats an id raises ``CorruptStateError``, which the engine catches to restore the file from
the last commit and re-observe the targets (design invariant 3).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.load.jsonpos import parse_json
from reconciler.load.schema_check import check
from reconciler.load.sources import STATE
from reconciler.load.tree import UnreadableFileError
from reconciler.model.archive import archive_path
from reconciler.model.statecheck import state_problems
from reconciler.model.status import StateFile
from reconciler.model.tree import Tree


class CorruptStateError(ReconcilerError):
    """``dispatch/state.json`` exists but cannot be used; restore it from git."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path} is corrupt: {reason}")


def parse_state(text: str, path: str = STATE) -> StateFile:
    """The status held by ``text``; ``CorruptStateError`` when it cannot be trusted."""
    doc, problems = parse_json(text, path)
    if doc is None:
        raise CorruptStateError(path, str(problems[0]))
    problems = [*problems, *check(doc, "state").problems]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CorruptStateError(path, f"{problems[0]}{more}")
    checked = state_problems(doc.data)
    if checked:
        raise CorruptStateError(path, "; ".join(checked))
    counts = Counter(e["id"] for e in doc.data["experiments"])
    repeated = sorted(i for i, n in counts.items() if n > 1)
    if repeated:
        raise CorruptStateError(path, f"experiment ids repeated: {', '.join(repeated)}")
    try:
        return StateFile.from_dict(doc.data)
    except (TypeError, ValueError, KeyError) as exc:
        raise CorruptStateError(path, f"{type(exc).__name__}: {exc}") from exc


def load_state(tree: Tree, project: str) -> StateFile:
    """The recorded status of ``project`` in ``tree`` (empty when the file is absent)."""
    try:
        text = tree.read_text(STATE)
    except UnreadableFileError as exc:
        raise CorruptStateError(STATE, exc.reason) from exc
    if text is None:
        return StateFile(project=project)
    return parse_state(text, STATE)


def recorded_ids(tree: Tree) -> set[str]:
    """Ids in the recorded status and in the archived phases it lists, read leniently (empty when
    absent or unreadable)."""
    data = _lenient(tree, STATE)
    ids = _ids(data)
    archived = data.get("archived") if isinstance(data, dict) else None
    for phase in archived if isinstance(archived, dict) else ():
        ids |= _ids(_lenient(tree, archive_path(str(phase))))
    return ids


def _lenient(tree: Tree, path: str) -> Any:
    try:
        text = tree.read_text(path)
        return json.loads(text) if text else {}
    except (ReconcilerError, ValueError, RecursionError):  # unreadable here or in git (not UTF-8)
        return {}


def _ids(data: Any) -> set[str]:
    entries = data.get("experiments") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return set()
    return {e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)}
