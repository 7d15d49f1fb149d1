"""Design tables as markdown (pure): ``experiments/results/<table>.md`` written by ``reconcile
export``.

Rows are grouped baseline, then ours (``main``/``ours``), then ablations, then the rest, as the
seed's dashboard drew them; columns are the design's, each headed with its metric and an arrow for
its direction. A cell shows ``mean ± std`` over its done seeds (no ``±`` with one seed), bold when it
is the best of its column (direction-aware), and ``(k/n seeds)`` when not every seed is done. A
cell without a value shows its derived status instead (``running 1/3``, ``✗ failed``, ``on hold``).
"""

from __future__ import annotations

from reconciler.export.tables import CellView, TableView
from reconciler.model.design import DesignCol, DesignRow

GROUP_ORDER = {"baseline": 0, "main": 1, "ours": 1, "ablation": 2}
ARROW = {"higher": "↑", "lower": "↓"}
_NO_VALUE = {
    "missing": "— (not dispatched)",
    "cancelled": "— (cancelled)",
    "failed": "✗ failed",
    "on_hold": "⏸ on hold",
    "unreachable": "? unreachable",
}


def fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def cell_text(cell: CellView | None, digits: int = 3) -> str:
    if cell is None:
        return ""
    if cell.mean is not None:
        text = fmt(cell.mean, digits)
        if cell.std is not None:
            text += f" ± {fmt(cell.std, digits)}"
        if cell.best:
            text = f"**{text}**"
        if cell.seeds_done < cell.seeds_total:
            text += f" ({cell.seeds_done}/{cell.seeds_total} seeds, {cell.status.replace('_', ' ')})"
        return text
    if cell.status in _NO_VALUE:
        return _NO_VALUE[cell.status]
    if cell.status == "done":
        return "— (no value)"
    return f"{cell.status.replace('_', ' ')} {cell.seeds_done}/{cell.seeds_total}"


def ordered_rows(rows: tuple[DesignRow, ...]) -> list[DesignRow]:
    return sorted(rows, key=lambda r: GROUP_ORDER.get(r.group, 3))  # stable: the design's order within a group


def header(col: DesignCol) -> str:
    return f"{col.label} ({col.metric} {ARROW.get(col.direction, '')})".replace(" )", ")")


def table_markdown(view: TableView, number: int = 1, digits: int = 3) -> str:
    """One design table as a markdown section (caption, table, status legend)."""
    lines = [f"## Table {number}: {view.title or view.name}", ""]
    if view.caption:
        lines += [view.caption, ""]
    lines.append("| Method | " + " | ".join(_escape(header(c)) for c in view.cols) + " |")
    lines.append("| --- | " + " | ".join("---" for _ in view.cols) + " |")
    for row in ordered_rows(view.rows):
        label = row.label or row.id
        if row.note:
            label += f" ({row.note})"
        cells = [_escape(cell_text(view.cell(row.id, c.id), digits)) for c in view.cols]
        lines.append(f"| {_escape(label)} | " + " | ".join(cells) + " |")
    lines.append("")
    counts: dict[str, int] = {}
    for cell in view.cells.values():
        counts[cell.status] = counts.get(cell.status, 0) + 1
    lines.append(
        "Cells: " + ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(counts.items()))
        + ". Mean ± sample std over done seeds; bold: best of the column (↑ higher is better, ↓ lower)."
    )  # fmt: skip
    return "\n".join(lines) + "\n"


def document(view: TableView, digits: int = 3) -> str:
    """The file ``experiments/results/<name>.md`` for one design table."""
    head = [
        f"# {view.name}",
        "",
        f"Written by `reconcile export` from `experiments/{view.name}.json`, `dispatch/state.json` and the"
        " result files; do not edit.",
        "",
        "",
    ]
    return "\n".join(head) + table_markdown(view, 1, digits)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
