"""What a ``dispatch/state.json`` may hold beyond its JSON shape (issue 15, item 5).

Anyone who can commit can write the state file, and its values become paths on the controller
(``progress/escalate_<id>.md``, ``experiments/logs/<id>.md``, ``result_file``) and on targets
(run dirs). ``state_problems`` holds every entry to what the reconciler itself writes: ids of
experiments and decisions match the spec's id pattern as a whole, a ``result_file`` is a result path
(``model.resultpath``), each attempt's run dir is ``<root>/runs/<id>/<n>`` with a normalised root (a run the seed
started: its normalised project dir),
attempt numbers count up from 1. ``StateFile.loads`` refuses a file with a problem (a
``ValueError``): the engine then restores the last good committed one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from reconciler.model.resultpath import result_path_error
from reconciler.model.seedrun import SEED, project_dir_error

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""Ids of experiments and decisions: ``model.spec.ID_PATTERN`` as a whole match. (Target names
are not paths of ours: an unknown one is a target not configured; they are not checked here.)"""
_RUN_DIR = re.compile(r"(?:(?P<root>.*)/)?runs/(?P<id>[^/]+)/(?P<n>[0-9]+)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class StateCheckError(ValueError):
    """The state file parses but holds a value the reconciler never writes."""


def state_problems(data: Mapping[str, Any], *, limit: int = 5) -> list[str]:
    """The first ``limit`` problems of the parsed state ``data`` (an empty list: it may be used)."""
    problems: list[str] = []
    for i, decision in enumerate(data.get("decisions_applied") or ()):
        if not _name(decision):
            problems.append(f"decisions_applied[{i}]: {decision!r} is not a decision id")
    entries = data.get("experiments")
    for i, entry in enumerate(entries if isinstance(entries, list) else ()):
        if len(problems) >= limit:
            break
        if isinstance(entry, Mapping):
            problems += _entry_problems(f"experiments[{i}]", entry)
    return problems[:limit]


def check_state(data: Mapping[str, Any]) -> None:
    """``StateCheckError`` naming the first problems of ``data``, if any."""
    problems = state_problems(data)
    if problems:
        raise StateCheckError("; ".join(problems))


def _name(value: object) -> bool:
    return isinstance(value, str) and NAME.fullmatch(value) is not None


def _entry_problems(where: str, entry: Mapping[str, Any]) -> list[str]:
    exp_id = entry.get("id")
    if not isinstance(exp_id, str) or not _name(exp_id):
        return [f"{where}.id: {exp_id!r} is not an experiment id ([A-Za-z0-9][A-Za-z0-9_.-]*)"]
    where = f"experiment {exp_id}"
    problems: list[str] = []
    result = entry.get("result_file")
    if result is not None:
        error = result_path_error(result) if isinstance(result, str) else "not a string"
        if error is not None:
            problems.append(f"{where}: result_file: {error}")
    attempts = entry.get("attempts") or ()
    previous = 0
    for attempt in attempts if isinstance(attempts, list) else ():
        if not isinstance(attempt, Mapping):
            continue
        n = attempt.get("n")
        if not isinstance(n, int) or isinstance(n, bool) or n <= previous:
            problems.append(f"{where}: attempt numbers must count up from 1 (found {n!r} after {previous})")
            break
        previous = n
        if attempt.get("origin") == SEED:
            error = project_dir_error(attempt.get("run_dir"))
        else:
            error = run_dir_error(attempt.get("run_dir"), exp_id, n)
        if error is not None:
            problems.append(f"{where}: attempt {n}: {error}")
    return problems


def run_dir_error(run_dir: object, exp_id: str, n: int) -> str | None:
    """Why ``run_dir`` is not ``<root>/runs/<exp_id>/<n>`` (what ``model.ids.run_dir`` makes)."""
    if not isinstance(run_dir, str):
        return "run_dir is not a string"
    match = _RUN_DIR.fullmatch(run_dir)
    if match is None or match["id"] != exp_id or match["n"] != str(n):
        return f"run_dir {run_dir!r} is not <root>/runs/{exp_id}/{n}"
    root = match["root"] or ""
    parts = root.split("/") if root else []
    inner = parts[1:] if run_dir.startswith("/") or parts[:1] in (["."], ["~"]) else parts
    if _CONTROL.search(root) or any(p in ("", ".", "..") for p in inner):
        return f"run_dir {run_dir!r}: its root must be a normalised path (no '..', '.' or empty parts)"
    return None
