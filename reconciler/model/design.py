"""Design tables (``experiments/*_design.json``) and definitions (``experiments/definitions.json``),
in the seed system's formats."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DesignRow:
    id: str
    label: str
    group: str
    note: str = ""


@dataclass(frozen=True)
class DesignCol:
    id: str
    label: str
    metric: str
    direction: str = "higher"


@dataclass(frozen=True)
class DesignCell:
    exp_id: str
    row: str
    col: str
    purpose: str = ""


@dataclass(frozen=True)
class DesignTable:
    name: str
    """File stem, e.g. ``pilot_design``."""
    title: str
    phase: str
    rows: tuple[DesignRow, ...]
    cols: tuple[DesignCol, ...]
    cells: tuple[DesignCell, ...]
    caption: str = ""
    description: str = ""


@dataclass(frozen=True)
class Definition:
    id: str
    name: str
    phase: str
    group: str
    description: str = ""
    seeds: tuple[int, ...] = ()
