"""Design tables with their derived cell statuses and values: pure, shared by ``reconcile export``
(markdown) and the dashboard (JSON).

API::

    ResultRows = Mapping[str, Sequence[Mapping[str, str]]]
        exp_id (one seed, e.g. ``mlp_moons_s0``) -> the rows of its canonical result CSV, each a
        ``{column: text}`` dict as ``csv.DictReader`` gives it (``reconciler.results.COLUMNS``).
        ``reconciler.export.results.read_result_rows(project_dir, state).rows`` reads it from disk.

    derive_tables(desired: DesiredState, state: StateFile, results: ResultRows) -> list[TableView]
        one view per design table of ``desired.designs`` (sorted by name).

    TableView(name, title, phase, caption, metrics: tuple[str, ...], rows: tuple[DesignRow, ...],
              cols: tuple[DesignCol, ...], cells: dict[(row_id, col_id), CellView])
        .cell(row_id, col_id) -> CellView | None; .to_json() -> dict (cells as a list, each with
        its ``row`` and ``col``).
    (rows and columns are the design table's own ``DesignRow``/``DesignCol``, ``model.design``)
    CellView(row, col, design_id, purpose, status, mean, std, n, seeds_done, seeds_total, best,
             exp_ids, counts)                      .to_json() -> dict

A cell's members are its design ``exp_id`` itself when an experiment has that id, else every
experiment whose base id it is (``<exp_id>_s<seed>``), from the spec and from the status file (an
experiment removed from the spec but still recorded counts; archived ones do not). A member with no
status entry yet is ``pending``.

Cell status, first match wins (``STATUSES``):

    missing      the cell names no experiment at all (nothing dispatched for it)
    done         every seed done
    cancelled    every seed cancelled
    on_hold      a seed is held (needs a decision)
    unreachable  a seed's target does not answer
    running      a seed runs
    queued       a seed waits in a batch queue
    pending      a seed has not started (or waits for a retry)
    failed       every seed is final, none done, one failed
    partial      every seed is final, some done, some failed or cancelled

Values: for each done seed, the mean of its rows whose ``metric`` is the column's metric and whose
value is finite; ``mean`` is the mean of those per-seed values, ``std`` their sample standard
deviation (``None`` below two seeds), ``n`` the number of seeds that gave a value. Only done seeds
count: a failed or retried attempt's stale file never leaks into a table.

``best``: per column, the cells with a value whose mean is the highest (``direction: higher``) or
the lowest (``lower``); ties are all best. The seed marked the column maximum whatever the metric
(ECE, loss: wrong) and took the first ``results`` key instead of the column's metric; both fixed.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.model.design import DesignCell, DesignCol, DesignRow, DesignTable
from reconciler.model.desired import DesiredState
from reconciler.model.status import StateFile, Status, StatusEntry

ResultRows = Mapping[str, Sequence[Mapping[str, str]]]

STATUSES = (
    "missing",
    "done",
    "cancelled",
    "on_hold",
    "unreachable",
    "running",
    "queued",
    "pending",
    "failed",
    "partial",
)


@dataclass(frozen=True)
class CellView:
    row: str
    col: str
    design_id: str
    """The ``exp_id`` the design file gives the cell (a base id, or one experiment's id)."""
    purpose: str
    status: str
    mean: float | None
    std: float | None
    n: int
    seeds_done: int
    seeds_total: int
    best: bool
    exp_ids: tuple[str, ...]
    """The member experiments (one per seed), sorted."""
    counts: tuple[tuple[str, int], ...] = ()
    """How many members have each status (sorted by status name)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "col": self.col,
            "design_id": self.design_id,
            "purpose": self.purpose,
            "status": self.status,
            "mean": self.mean,
            "std": self.std,
            "n": self.n,
            "seeds_done": self.seeds_done,
            "seeds_total": self.seeds_total,
            "best": self.best,
            "exp_ids": list(self.exp_ids),
            "counts": dict(self.counts),
        }


@dataclass(frozen=True)
class TableView:
    name: str
    title: str
    phase: str
    caption: str
    metrics: tuple[str, ...]
    rows: tuple[DesignRow, ...]
    cols: tuple[DesignCol, ...]
    cells: dict[tuple[str, str], CellView] = field(default_factory=dict)

    def cell(self, row: str, col: str) -> CellView | None:
        return self.cells.get((row, col))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "phase": self.phase,
            "caption": self.caption,
            "metrics": list(self.metrics),
            "rows": [{"id": r.id, "label": r.label, "group": r.group, "note": r.note} for r in self.rows],
            "cols": [{"id": c.id, "label": c.label, "metric": c.metric, "direction": c.direction} for c in self.cols],
            "cells": [c.to_json() for _, c in sorted(self.cells.items())],
        }


def derive_tables(desired: DesiredState, state: StateFile, results: ResultRows) -> list[TableView]:
    """One view per design table of the desired state."""
    members = _Members(desired, state)
    return [_table(t, members, results) for t in sorted(desired.designs, key=lambda t: t.name)]


class _Members:
    """Which experiments (and their entries) a design cell's ``exp_id`` stands for."""

    def __init__(self, desired: DesiredState, state: StateFile) -> None:
        self.entries = state.by_id()
        self.ids: set[str] = {s.id for s in desired.experiments}
        self.bases: dict[str, set[str]] = {}
        for spec in desired.experiments:
            self.bases.setdefault(spec.base_id, set()).add(spec.id)
        for entry in state.entries:
            if entry.condition("Archived") is not None:
                continue
            self.ids.add(entry.id)
            if entry.experiment_id:
                self.bases.setdefault(entry.experiment_id, set()).add(entry.id)

    def of(self, design_id: str) -> tuple[str, ...]:
        if not design_id:
            return ()
        found = set(self.bases.get(design_id, ()))
        pattern = re.compile(re.escape(design_id) + r"_s\d+")
        found |= {i for i in self.ids if pattern.fullmatch(i)}
        if not found and design_id in self.ids:
            found.add(design_id)
        return tuple(sorted(found))

    def status(self, exp_id: str) -> Status:
        entry = self.entries.get(exp_id)
        return entry.status if entry is not None else Status.PENDING

    def entry(self, exp_id: str) -> StatusEntry | None:
        return self.entries.get(exp_id)


def _table(table: DesignTable, members: _Members, results: ResultRows) -> TableView:
    cols, rows = table.cols, table.rows
    by_col = {c.id: c for c in cols}
    raw: dict[tuple[str, str], CellView] = {}
    for cell in table.cells:
        col = by_col.get(cell.col)
        raw[(cell.row, cell.col)] = _cell(cell, col.metric if col else "", members, results)
    cells = _mark_best(raw, by_col)
    metrics = tuple(dict.fromkeys(c.metric for c in cols if c.metric))
    return TableView(table.name, table.title, table.phase, table.caption, metrics, rows, cols, cells)


def _cell(cell: DesignCell, metric: str, members: _Members, results: ResultRows) -> CellView:
    ids = members.of(cell.exp_id)
    statuses = [members.status(i) for i in ids]
    values = []
    for exp_id, status in zip(ids, statuses, strict=True):
        if status is Status.DONE:
            value = seed_value(results.get(exp_id, ()), metric)
            if value is not None:
                values.append(value)
    mean = statistics.fmean(values) if values else None
    std = statistics.stdev(values) if len(values) >= 2 else None
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s.value] = counts.get(s.value, 0) + 1
    return CellView(
        row=cell.row,
        col=cell.col,
        design_id=cell.exp_id,
        purpose=cell.purpose,
        status=cell_status(statuses),
        mean=mean,
        std=std,
        n=len(values),
        seeds_done=counts.get(Status.DONE.value, 0),
        seeds_total=len(ids),
        best=False,
        exp_ids=ids,
        counts=tuple(sorted(counts.items())),
    )


def seed_value(rows: Sequence[Mapping[str, str]], metric: str) -> float | None:
    """The mean of one run's finite values for ``metric``; ``None`` when it has none."""
    values = []
    for row in rows:
        if (row.get("metric") or "").strip() != metric:
            continue
        try:
            value = float(row.get("value") or "")
        except ValueError:
            continue
        if math.isfinite(value):
            values.append(value)
    return statistics.fmean(values) if values else None


def cell_status(statuses: Sequence[Status]) -> str:
    """The derived status of a cell whose members have ``statuses`` (see the module docstring)."""
    if not statuses:
        return "missing"
    present = set(statuses)
    if present == {Status.DONE}:
        return "done"
    if present == {Status.CANCELLED}:
        return "cancelled"
    for status in (Status.ON_HOLD, Status.UNREACHABLE, Status.RUNNING, Status.QUEUED, Status.PENDING):
        if status in present:
            return str(status.value)
    return "partial" if Status.DONE in present else "failed"


def _mark_best(
    cells: dict[tuple[str, str], CellView], cols: Mapping[str, DesignCol]
) -> dict[tuple[str, str], CellView]:
    best_of: dict[str, float] = {}
    for (_, col), cell in cells.items():
        if cell.mean is None or col not in cols:
            continue
        lower = cols[col].direction == "lower"
        current = best_of.get(col)
        if current is None or (cell.mean < current if lower else cell.mean > current):
            best_of[col] = cell.mean
    out = {}
    for key, cell in sorted(cells.items()):
        is_best = cell.mean is not None and best_of.get(key[1]) == cell.mean
        out[key] = replace(cell, best=True) if is_best else cell
    return out
