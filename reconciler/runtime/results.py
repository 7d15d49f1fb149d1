"""The job's results: the canonical result CSV (one writer) and the ``final/`` metrics.

``COLUMNS`` and ``GROUPS`` are copies of ``reconciler.results`` (this package imports nothing else of
ours, so it can be shipped alone); ``tests/runtime`` asserts they are equal. ``write_results`` is
the one CSV writer: columns in canonical order, values that ``reconciler.results.check_result``
accepts (finite numbers, canonical groups, one exp_id), written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reconciler.runtime.env import Run, current
from reconciler.runtime.sidecar import atomic_write_text, update_sidecar, utc_now

COLUMNS = ("exp_id", "method", "dataset", "group", "metric", "seed", "value", "host", "gpu", "finished_at")
GROUPS = frozenset({"main", "baseline", "ablation", "analysis"})
FINAL_FILE = "final/metrics.json"


def result_rows(
    metrics: Mapping[str, float],
    *,
    method: str,
    dataset: str,
    group: str,
    seed: int,
    run: Run | None = None,
    finished_at: str | None = None,
) -> list[dict[str, Any]]:
    """One row per metric, with host, GPUs (``CUDA_VISIBLE_DEVICES``) and ``finished_at`` filled in."""
    run = run or current()
    finished = finished_at or utc_now()
    host = socket.gethostname()
    return [
        {
            "exp_id": run.exp_id,
            "method": method,
            "dataset": dataset,
            "group": group,
            "metric": metric,
            "seed": seed,
            "value": value,
            "host": host,
            "gpu": run.gpus,
            "finished_at": finished,
        }
        for metric, value in metrics.items()
    ]


def _cell(column: str, value: Any) -> str:
    if column == "value":
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"write_results: value {value!r} is not finite")
        return repr(number)
    return "" if value is None else str(value)


def render_results(rows: Iterable[Mapping[str, Any]]) -> str:
    """The CSV text: header in ``COLUMNS`` order, then the rows (checked, unknown keys refused)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    exp_ids: set[str] = set()
    for number, row in enumerate(rows, start=1):
        unknown = sorted(set(row) - set(COLUMNS))
        missing = [c for c in ("exp_id", "metric", "value", "group") if row.get(c) in (None, "")]
        if unknown or missing:
            raise ValueError(f"write_results: row {number}: unknown columns {unknown}, missing {missing}")
        if row["group"] not in GROUPS:
            raise ValueError(f"write_results: row {number}: group {row['group']!r} is not one of {sorted(GROUPS)}")
        exp_ids.add(str(row["exp_id"]))
        writer.writerow([_cell(c, row.get(c)) for c in COLUMNS])
        count += 1
    if count == 0:
        raise ValueError("write_results: no rows")
    if len(exp_ids) > 1:
        raise ValueError(f"write_results: one run's file holds one exp_id, got {sorted(exp_ids)}")
    return out.getvalue()


def write_results(rows: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Write the canonical result CSV at ``path`` atomically; returns the path."""
    target = Path(path)
    atomic_write_text(target, render_results(rows))
    return target


def write_final(metrics: Mapping[str, float], run: Run | None = None) -> Path | None:
    """Record the final metrics: ``<run dir>/final/metrics.json``, the sidecar's ``final`` (and
    ``metrics``), and ``final/<name>`` in the summary of the wandb run ``init_wandb`` started.

    Returns the JSON file's path, or None outside a reconciler run (nothing written to disk).
    """
    run = run or current()
    final: dict[str, float] = {}
    for name, value in metrics.items():
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"write_final: {name} = {value!r} is not finite")
        final[str(name)] = number
    from reconciler.runtime import tracker  # no cycle at import time; wandb itself stays unimported

    tracker.summarize_final(final)
    if run.run_dir is None:
        return None
    path = run.run_dir / FINAL_FILE
    doc = {"exp_id": run.exp_id, "attempt": run.attempt, "finished_at": utc_now(), "metrics": final}
    atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    update_sidecar({"final": final, "metrics": final}, run)
    return path
