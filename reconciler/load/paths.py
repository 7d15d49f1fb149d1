"""Cross-file checks on what a spec will run and write: placeholders and project paths.

Runs after the specs are built. A command may use ``{seed}``, ``{exp_id}``, ``{checkpoint_dir}`` and
``{result_file}``; a ``result_file`` may use ``{exp_id}`` and ``{seed}`` (it is filled before the
checkpoint dir is known) and must lie under ``experiments/results/``, away from the files git and
the reconciler own (no ``..``, no hidden file or folder). Result files must differ between
experiments, or runs would overwrite each other. ``${VAR}`` and ``{a,b}`` are shell syntax, not
placeholders, and are left alone.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable

from reconciler.errors import Problem
from reconciler.load.specs import LocatedSpec
from reconciler.model.resultpath import result_path_error
from reconciler.model.spec import PLACEHOLDERS

PLACEHOLDER = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}")
RESULT_PLACEHOLDERS = ("exp_id", "seed")


def _placeholders(ls: LocatedSpec, key: str, text: str, known: tuple[str, ...]) -> list[Problem]:
    problems = []
    listed = ", ".join("{" + k + "}" for k in known)
    for name in dict.fromkeys(PLACEHOLDER.findall(text)):
        if name not in known:
            message = f"unknown placeholder '{{{name}}}' (known: {listed})"
        elif name == "seed" and ls.spec.seed is None:
            message = "placeholder '{seed}' is used but the experiment has no seeds"
        else:
            continue
        problems.append(ls.doc.problem(ls.path(key), message))
    return problems


def project_path_error(template: str) -> str | None:
    """Why ``template`` (placeholders allowed) is not a result path, or ``None``.

    A result path is relative, normalised (no ``..``, ``.`` or empty part), names no hidden file or
    folder (no part starts with ``.``) and lies under ``experiments/results/``. Placeholders are
    checked as a plain name: an id never starts with ``.`` and a seed is a number.
    """
    return result_path_error(PLACEHOLDER.sub("x", template), template)


def check_spec_paths(located: Iterable[LocatedSpec]) -> list[Problem]:
    """Placeholders of commands and result files, result paths inside the project and distinct."""
    problems: list[Problem] = []
    writers: dict[str, LocatedSpec] = {}
    for ls in located:
        spec = ls.spec
        problems += _placeholders(ls, "command", spec.command, PLACEHOLDERS)
        problems += _placeholders(ls, "result_file", spec.result_file, RESULT_PLACEHOLDERS)
        error = project_path_error(spec.result_file)
        if error is not None:
            problems.append(ls.doc.problem(ls.path("result_file"), error))
            continue
        path = posixpath.normpath(spec.result_path)
        first = writers.setdefault(path, ls)
        if first is ls or first.spec.id == spec.id:
            continue  # the same id twice is reported as a duplicate id
        if first.doc is ls.doc and first.index == ls.index:
            message = f"result file '{spec.result_file}' is the same for every seed (use {{exp_id}} or {{seed}})"
        else:
            message = f"result file '{path}' is also written by '{first.spec.id}' ({first.where()})"
        problems.append(ls.doc.problem(ls.path("result_file"), message))
    return problems
