"""Build decisions, design tables and definitions from their schema-checked files.

Runs after the schema check, beside ``specs``. Only clean entries are built (an entry with a schema
error is already reported), so the cross-file checks can still look at the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.load.schema_check import Checked
from reconciler.model.decisions import Decision, DecisionAction
from reconciler.model.design import Definition, DesignCell, DesignCol, DesignRow, DesignTable


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _entries(checked: Checked | None, key: str | None) -> list[tuple[int, Mapping[str, Any]]]:
    """``(index, entry)`` of the clean entries of the list at ``key`` (the root when ``None``)."""
    if checked is None:
        return []
    prefix: tuple[str, ...] = () if key is None else (key,)
    items = checked.doc.get(prefix)
    if not isinstance(items, list):
        return []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict) and checked.clean((*prefix, i))]


def build_decisions(checked: Checked | None) -> list[tuple[int, Decision]]:
    """``(index, decision)`` for the clean entries of ``dispatch/decisions.yaml``."""
    out: list[tuple[int, Decision]] = []
    if checked is None:
        return out
    for i, d in _entries(checked, "decisions"):
        line, _ = checked.doc.locate(("decisions", i))
        out.append(
            (
                i,
                Decision(
                    id=d["id"],
                    action=DecisionAction(d["action"]),
                    exp=d.get("exp"),
                    stage=d.get("stage"),
                    reason=_text(d.get("reason")),
                    by=_text(d.get("by")),
                    at=_text(d.get("at")),
                    source=f"{checked.doc.file}:{line}",
                ),
            )
        )
    return out


def build_definitions(checked: Checked | None) -> list[tuple[int, Definition]]:
    """``(index, definition)`` for the clean entries of ``experiments/definitions.json``."""
    return [
        (
            i,
            Definition(
                id=d["id"],
                name=d["name"],
                phase=d["phase"],
                group=d["group"],
                description=_text(d.get("description")),
                seeds=tuple(d.get("seeds") or ()),
            ),
        )
        for i, d in _entries(checked, None)
    ]


def build_design(checked: Checked) -> DesignTable | None:
    """The table of one ``experiments/*_design.json``; ``None`` when the file has schema errors."""
    if not checked.valid or not isinstance(checked.doc.data, dict):
        return None
    d = checked.doc.data
    name = checked.doc.file.rsplit("/", 1)[-1].removesuffix(".json")
    return DesignTable(
        name=name,
        title=d["title"],
        phase=d["phase"],
        rows=tuple(DesignRow(r["id"], r["label"], r["group"], _text(r.get("note"))) for r in d["rows"]),
        cols=tuple(DesignCol(c["id"], c["label"], c["metric"], c.get("direction", "higher")) for c in d["cols"]),
        cells=tuple(DesignCell(_text(c["exp_id"]), c["row"], c["col"], _text(c.get("purpose"))) for c in d["cells"]),
        caption=_text(d.get("caption")),
        description=_text(d.get("description")),
    )
