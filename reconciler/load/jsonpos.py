"""JSON text -> ``Document`` with the line and column of every object key and array item.

First step of loading the JSON kinds (definitions, design tables, state). ``json.loads`` decides
what the data is (PyYAML would read ``1e5`` as a string, so JSON is not parsed as YAML); once it
has accepted the text, a small scanner walks the same text again to record positions and repeated
keys. ``json`` errors become a ``Problem`` at the decoder's line and column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from reconciler.errors import Problem
from reconciler.load.document import (
    Document,
    JsonPath,
    Position,
    file_problem,
    format_path,
    line_starts,
    offset_position,
)

_WS = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_LITERAL = re.compile(r"-?(?:Infinity|NaN|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|true|false|null|NaN|Infinity")


class _Scanner:
    """Walks text that ``json.loads`` accepted, recording where each key and item starts."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.starts = line_starts(text)
        self.positions: dict[JsonPath, Position] = {}
        self.problems: list[Problem] = []

    def pos(self, offset: int) -> Position:
        return offset_position(self.starts, offset)

    def ws(self, i: int) -> int:
        match = _WS.match(self.text, i)
        return match.end() if match else i

    def value(self, i: int, path: JsonPath) -> int:
        """Scan the value at offset ``i`` (no leading space); return the offset after it."""
        ch = self.text[i]
        if ch == "{":
            return self.obj(i + 1, path)
        if ch == "[":
            return self.arr(i + 1, path)
        match = (_STRING if ch == '"' else _LITERAL).match(self.text, i)
        if match is None:  # pragma: no cover - json.loads accepted the text
            raise ValueError(f"unexpected character at offset {i}")
        return match.end()

    def obj(self, i: int, path: JsonPath) -> int:
        seen: set[str] = set()
        i = self.ws(i)
        if self.text[i] == "}":
            return i + 1
        while True:
            key_at = i
            match = _STRING.match(self.text, i)
            if match is None:  # pragma: no cover - json.loads accepted the text
                raise ValueError(f"expected a key at offset {i}")
            key: str = json.loads(match.group())
            i = match.end()
            child = (*path, key)
            if key in seen:
                line, col = self.pos(key_at)
                self.problems.append(
                    Problem(self.file, line, col, format_path(child), f"duplicate key '{key}' (the last one wins)")
                )
            seen.add(key)
            self.positions[child] = self.pos(key_at)
            i = self.ws(self.ws(i) + 1)  # skip ':'
            i = self.ws(self.value(i, child))
            if self.text[i] == "}":
                return i + 1
            i = self.ws(i + 1)  # skip ','

    def arr(self, i: int, path: JsonPath) -> int:
        i = self.ws(i)
        if self.text[i] == "]":
            return i + 1
        n = 0
        while True:
            child = (*path, n)
            self.positions[child] = self.pos(i)
            i = self.ws(self.value(i, child))
            n += 1
            if self.text[i] == "]":
                return i + 1
            i = self.ws(i + 1)


class _Positions(Mapping[JsonPath, Position]):
    """The positions of a document, scanned on first use: a valid document (the usual case) is
    never scanned, since only a problem needs a line and a column."""

    def __init__(self, text: str, file: str) -> None:
        self._text, self._file = text, file
        self._found: dict[JsonPath, Position] | None = None

    def _all(self) -> dict[JsonPath, Position]:
        if self._found is None:
            self._found = _scan(self._text, self._file)[0]
        return self._found

    def __getitem__(self, key: JsonPath) -> Position:
        return self._all()[key]

    def __iter__(self) -> Iterator[JsonPath]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def _scan(text: str, file: str) -> tuple[dict[JsonPath, Position], list[Problem]]:
    scanner = _Scanner(text, file)
    try:
        start = scanner.ws(0)
        scanner.positions[()] = scanner.pos(start)
        scanner.value(start, ())
    except (RecursionError, ValueError, IndexError):
        return {(): (1, 1)}, []  # positions are a courtesy; the data stands
    return scanner.positions, scanner.problems


def parse_json(text: str, file: str) -> tuple[Document | None, list[Problem]]:
    """Parse ``text``; the document is ``None`` when it is not JSON. A repeated key is a problem;
    positions are found only when something asks for one (``_Positions``)."""
    text = text.removeprefix("\ufeff")
    repeated = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeated
        made = dict(items)
        if len(made) != len(items):
            repeated = True
        return made

    try:
        data: Any = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        return None, [file_problem(file, f"invalid JSON: {exc.msg}", exc.lineno, exc.colno)]
    except RecursionError:
        return None, [file_problem(file, "invalid JSON: nested too deeply")]
    except ValueError:  # an integer of more digits than Python converts (4300)
        return None, [file_problem(file, "invalid JSON: a number with too many digits")]
    if repeated:  # the scan says where
        positions, problems = _scan(text, file)
        return Document(file, data, positions), problems
    return Document(file, data, _Positions(text, file)), []
