"""Read the seed's ``config/config.md`` as the seed's setup phase writes it (it has no parser of its own).

The file is loose markdown: ``key: value`` settings at the top, each value possibly followed by a
``# comment`` (the seed's template comments every line: ``conda_env: ar_x      # conda environment
name used by ENV agents``) and continued by comment-only lines; then sections. Settings may be list
items or bold (``- **wandb_entity**: lab``); values may be wrapped in backticks or quotes. A value
still holding the template's placeholder (``<FILL_IN>``, ``<wandb-username>``) is unset.

Sections read: ``## Available Compute Resources`` (a table: Machine | GPUs | Memory per GPU |
Status), ``## Selected Machines`` (a list) and ``## External Clusters`` (free text naming C500 and
Gadi, with their settings as list items). Code fences are skipped; the first value of a key wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SETTING = re.compile(
    r"^\s*(?:[-*+]\s+)?(?:\*\*|__)?`?(?P<key>[A-Za-z_][A-Za-z0-9_ ]*?)`?(?:\*\*|__)?\s*:(?:\*\*|__)?\s*(?P<value>.*)$"
)
_COMMENT = re.compile(r"\s+#.*$")
_PLACEHOLDER = re.compile(r"^<[^<>]*>$|^\[[^\[\]]*\]$")
_WRAPPERS = "`\"'*"
_HEADING = re.compile(r"^(?P<level>#{1,6})\s+(?P<title>.+?)\s*#*\s*$")


@dataclass(frozen=True)
class Machine:
    """A row of the compute table."""

    name: str
    gpus: str = ""
    memory: str = ""
    status: str = ""

    @property
    def available(self) -> bool:
        """Not marked down, offline or unavailable in the table's Status column."""
        return not re.search(r"down|offline|unavail|unreachable|broken|✗|❌", self.status, re.IGNORECASE)


@dataclass(frozen=True)
class SeedConfig:
    """What the import reads from ``config.md``."""

    settings: dict[str, str] = field(default_factory=dict)
    """Lower-case key -> value, comments and placeholders removed (one-word keys, any section
    but the compute table and machine list)."""
    machines: tuple[Machine, ...] = ()
    """The compute table's rows."""
    selected: tuple[str, ...] = ()
    """The ``Selected Machines`` list."""
    clusters: dict[str, str] = field(default_factory=dict)
    """``External Clusters``' settings (``AFS base path``, ``Project code``, ``Modules``, ...), by
    lower-case label, and the section's whole text under ``""``."""

    @property
    def uses_c500(self) -> bool:
        return bool(self.settings.get("c500_afs_base")) or "c500" in self.clusters.get("", "").lower()

    @property
    def uses_gadi(self) -> bool:
        return bool(self.settings.get("gadi_scratch_base")) or "gadi" in self.clusters.get("", "").lower()


def clean_value(raw: str) -> str:
    """A setting's value without its trailing comment, wrappers or template placeholder."""
    value = _COMMENT.sub("", raw).strip()
    value = value.strip(_WRAPPERS).strip()
    return "" if _PLACEHOLDER.match(value) or value.upper() == "FILL_IN" else value


def parse_config_md(text: str) -> SeedConfig:
    settings: dict[str, str] = {}
    machines: list[Machine] = []
    selected: list[str] = []
    clusters: dict[str, str] = {}
    cluster_lines: list[str] = []
    section = ""
    in_fence = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        heading = _HEADING.match(stripped)
        if heading:
            section = heading["title"].strip().lower() if len(heading["level"]) == 2 else section
            continue
        if not stripped or stripped.startswith(("#", ">")):
            continue
        if section.startswith("available compute"):
            row = _table_row(stripped)
            if row is not None:
                machines.append(row)
        elif section.startswith("selected machine"):
            name = _list_item(stripped)
            if name:
                selected.append(name)
        elif not stripped.startswith("|"):
            external = section.startswith("external cluster")
            if external:
                cluster_lines.append(stripped)
            match = _SETTING.match(line)
            if match is None:
                continue
            key, value = _label(match["key"]), clean_value(match["value"])
            if not value:
                continue
            if " " not in key:
                settings.setdefault(key, value)
            if external:
                clusters.setdefault(key, value)
    if cluster_lines:
        clusters[""] = "\n".join(cluster_lines)
    return SeedConfig(settings, tuple(machines), tuple(selected), clusters)


def _label(key: str) -> str:
    return " ".join(key.strip().lower().split())


def _table_row(line: str) -> Machine | None:
    if not line.startswith("|"):
        return None
    cells = [c.strip().strip(_WRAPPERS).strip() for c in line.strip("|").split("|")]
    if not cells or not cells[0] or set(cells[0]) <= set("-: ") or cells[0].lower() == "machine":
        return None
    if _PLACEHOLDER.match(cells[0]):
        return None
    cells += [""] * (4 - len(cells))
    return Machine(cells[0], cells[1], cells[2], cells[3])


def _list_item(line: str) -> str:
    match = re.match(r"^(?:[-*+]|\d+[.)])\s+(?P<item>.+)$", line)
    if match is None:
        return ""
    item = clean_value(match["item"])
    item = re.split(r"\s+[(\u2014\u2013-]\s*|\s*\(|:", item, maxsplit=1)[0]  # "host1 (4x A100)" -> "host1"
    return item.strip(_WRAPPERS).strip()
