"""A parsed file of the desired state: plain data plus where every key and item sits.

First step of loading: ``yamlpos`` and ``jsonpos`` turn text into a ``Document``; every later step
(schema check, model building, cross-file checks) reports a ``Problem`` through ``Document.problem``,
which finds the line and column of the field, or of its nearest existing parent.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import Problem

JsonPath = tuple[str | int, ...]
"""Where a value sits in a document: mapping keys and sequence indices from the root."""

Position = tuple[int, int]
"""1-based (line, column)."""

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def format_path(path: Iterable[str | int]) -> str:
    """``("experiments", 2, "seeds", 0)`` -> ``experiments[2].seeds[0]``; odd keys are quoted."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"  # control characters escaped
    return out


@dataclass(frozen=True)
class Document:
    """One file, parsed. ``data`` is plain JSON-like Python (dict, list, str, int, float, bool, None)."""

    file: str
    """Path relative to the project, with ``/``."""
    data: Any
    positions: Mapping[JsonPath, Position] = field(default_factory=dict)

    def locate(self, path: JsonPath) -> Position:
        """Position of ``path``, else of its nearest recorded parent, else the start of the file."""
        for end in range(len(path), -1, -1):
            pos = self.positions.get(path[:end])
            if pos is not None:
                return pos
        return (1, 1)

    def problem(self, path: JsonPath, message: str, *, at: JsonPath | None = None) -> Problem:
        """A problem about the field ``path`` (placed at ``at`` when given)."""
        line, column = self.locate(path if at is None else at)
        return Problem(self.file, line, column, format_path(path), message)

    def where(self, path: JsonPath) -> str:
        """``file:line:col`` of ``path``, for messages that name a second place."""
        line, column = self.locate(path)
        return f"{self.file}:{line}:{column}"

    def get(self, path: JsonPath) -> Any:
        """The value at ``path``, or ``None`` when any step is missing or of the wrong kind."""
        value: Any = self.data
        for part in path:
            if isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
                value = value[part]
                continue
            if isinstance(value, dict) and isinstance(part, str) and part in value:
                value = value[part]
                continue
            return None
        return value


def file_problem(file: str, message: str, line: int = 1, column: int = 1) -> Problem:
    """A problem about a whole file (unreadable, malformed, missing)."""
    return Problem(file, line, column, "", message)


def line_starts(text: str) -> list[int]:
    """Offsets at which each line of ``text`` starts (for offset -> line/column)."""
    starts = [0]
    starts.extend(i + 1 for i, ch in enumerate(text) if ch == "\n")
    return starts


def offset_position(starts: list[int], offset: int) -> Position:
    """1-based (line, column) of a character offset, given ``line_starts`` of the text."""
    line = bisect.bisect_right(starts, offset)
    return (line, offset - starts[line - 1] + 1)
