"""The canonical result CSV: its columns and the check a pulled-back result must pass.

One definition used by the collector (``done`` requires it), ``reconcile export`` and the
example project's tests.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

COLUMNS = ("exp_id", "method", "dataset", "group", "metric", "seed", "value", "host", "gpu", "finished_at")
GROUPS = frozenset({"main", "baseline", "ablation", "analysis"})
MAX_METRICS = 64
"""Metrics kept on a done entry's ``results`` (the file itself keeps every row)."""
MAX_METRIC_NAME = 64


@dataclass(frozen=True)
class ResultCheck:
    ok: bool
    rows: int
    message: str
    means: tuple[tuple[str, float], ...] = ()
    """Each metric's mean over the rows, in the order the metrics first appear."""


def check_result(text: str, exp_id: str) -> ResultCheck:
    """The file parses, has the canonical columns in order, at least one row, finite values,
    canonical groups, and every row names ``exp_id``."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        return ResultCheck(False, 0, "empty result file")
    except csv.Error as exc:
        return ResultCheck(False, 0, f"unparsable CSV: {exc}")
    header = [h.strip() for h in header]
    if tuple(header) != COLUMNS:
        missing = [c for c in COLUMNS if c not in header]
        what = f"missing columns {', '.join(missing)}" if missing else "columns out of order"
        return ResultCheck(False, 0, f"{what} (want {', '.join(COLUMNS)})")
    rows = 0
    values: dict[str, list[float]] = {}
    try:
        for number, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(COLUMNS):
                return ResultCheck(False, rows, f"line {number}: {len(row)} fields, want {len(COLUMNS)}")
            record = dict(zip(COLUMNS, row, strict=True))
            if record["exp_id"] != exp_id:
                return ResultCheck(False, rows, f"line {number}: exp_id {record['exp_id']!r}, want {exp_id!r}")
            if record["group"] not in GROUPS:
                return ResultCheck(False, rows, f"line {number}: group {record['group']!r} is not canonical")
            try:
                value = float(record["value"])
            except ValueError:
                return ResultCheck(False, rows, f"line {number}: value {record['value']!r} is not a number")
            if not math.isfinite(value):
                return ResultCheck(False, rows, f"line {number}: value {record['value']} is not finite")
            values.setdefault(record["metric"], []).append(value)
            rows += 1
    except csv.Error as exc:
        return ResultCheck(False, rows, f"unparsable CSV: {exc}")
    if rows == 0:
        return ResultCheck(False, 0, "no result rows")
    # 12 significant digits: the mean of 0.8 and 0.9 is 0.85 in the state file, not 0.8500000000000001
    means = tuple(
        (metric, float(f"{math.fsum(v) / len(v):.12g}"))
        for metric, v in values.items()
        if len(metric) <= MAX_METRIC_NAME
    )
    return ResultCheck(True, rows, f"{rows} rows", means[:MAX_METRICS])
