"""The result files: reading each done run's CSV back, and the one writer of
``experiments/results/all_results.csv``.

``read_result_rows`` (I/O) gives the ``ResultRows`` that ``tables``, ``guard``, ``synthesis`` and
``notes`` take, plus a problem per done run whose file is missing or fails
``reconciler.results.check_result`` (those runs count as missing, never as zero).
``all_results_text`` (pure) is the export: the canonical columns (``reconciler.results.COLUMNS``)
and nothing else, rows of done runs only, sorted by ``exp_id`` then ``metric`` with each file's own
row order kept, values as the run wrote them, except that a text cell a spreadsheet would run as a
formula is prefixed with ``'`` (``csv_cell``). The seed had three writers with three schemas (the
tracker server on every finish, ``export_results.py`` from wandb, hand filling); this is the only
one, run by ``reconcile export``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.model.status import StateFile, Status, StatusEntry
from reconciler.results import COLUMNS, check_result

ALL_RESULTS = "experiments/results/all_results.csv"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
"""First characters that make a spreadsheet read a cell as a formula (OWASP CSV injection, with the
full-width forms some spreadsheets fold to them)."""
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class ResultFiles:
    rows: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    """exp_id -> the rows of its result CSV (done runs whose file passed the check)."""
    problems: dict[str, str] = field(default_factory=dict)
    """exp_id -> why its result is not usable (done runs only)."""


def result_path(entry: StatusEntry) -> str:
    return entry.result_path


def read_result_rows(project_dir: Path, state: StateFile | Iterable[StatusEntry]) -> ResultFiles:
    """The rows of every done run's result file, checked; a path outside the project is a problem."""
    entries = state.entries if isinstance(state, StateFile) else tuple(state)
    root = project_dir.resolve()
    rows: dict[str, list[dict[str, str]]] = {}
    problems: dict[str, str] = {}
    for entry in entries:
        if entry.status is not Status.DONE:
            continue
        rel = result_path(entry)
        path = (root / rel).resolve()
        if not path.is_relative_to(root):
            problems[entry.id] = f"{rel}: outside the project"
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems[entry.id] = f"{rel}: missing"
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems[entry.id] = f"{rel}: unreadable ({exc})"
            continue
        check = check_result(text, entry.id)
        if not check.ok:
            problems[entry.id] = f"{rel}: {check.message}"
            continue
        rows[entry.id] = parse_rows(text)
    return ResultFiles(rows, problems)


def parse_rows(text: str) -> list[dict[str, str]]:
    """The data rows of a canonical result CSV, as ``{column: text}`` (blank lines skipped)."""
    return [
        {c: (row.get(c) or "").strip() for c in COLUMNS}
        for row in csv.DictReader(io.StringIO(text))
        if any((v or "").strip() for v in row.values() if isinstance(v, str))
    ]


def all_results_text(rows: Mapping[str, Sequence[Mapping[str, str]]]) -> str:
    """The canonical ``all_results.csv``: header, then every row sorted by (exp_id, metric)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for exp_id in sorted(rows):
        ordered = sorted(rows[exp_id], key=lambda r: r.get("metric") or "")
        for row in ordered:
            writer.writerow([csv_cell(row.get(c) or "") for c in COLUMNS])
    return out.getvalue()


def csv_cell(text: str) -> str:
    """``text`` safe to open in a spreadsheet: a cell that would start a formula (``=cmd|...``,
    ``@SUM(...)``, ``+1+1``, a tab) gets a leading ``'``, which spreadsheets show as text and do
    not evaluate. A number (``-0.5``, ``+1e-3``) is left as it is."""
    if text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def row_count(rows: Mapping[str, Sequence[Mapping[str, str]]]) -> int:
    return sum(len(v) for v in rows.values())
