"""The limits every value read from a file or a request must stay within, and a strict JSON reader.

Used wherever data enters from outside: the loaders check every parsed document with
``bad_values`` (so a problem carries its file, line and field), ``StateFile.loads`` and the
dashboard's request bodies decode with ``loads_strict``. What is refused, and why:

- non-finite numbers (``NaN``, ``Infinity``, ``1e999`` which ``json`` reads as infinity, YAML's
  ``.nan``/``.inf``): no field of the contract means them, and they make the JSON we write invalid;
- integers beyond 64 bits (no field needs them; other readers of our files cannot hold them);
- nesting deeper than ``MAX_DEPTH`` (the contract is a few levels deep; deep nesting only serves to
  exhaust the recursion of a reader);
- text that is not UTF-8 (``loads_strict`` on bytes).

Every refusal of ``loads_strict`` is a ``JsonTextError``, a ``ValueError``: callers that already
treat ``ValueError`` as "unusable" (the state store restores the file from git) keep working.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

MAX_DEPTH = 64
"""Lists and mappings nested deeper than this are refused."""

MAX_INT = 2**63 - 1
"""Integers outside ``[-MAX_INT - 1, MAX_INT]`` are refused."""

Path = tuple[str | int, ...]


class JsonTextError(ValueError):
    """Text or bytes that are not JSON within the limits above; the message says why."""


def within(data: Any) -> bool:
    """Whether every value of ``data`` is within the limits: the fast check (no paths kept, about
    a tenth of the time of ``bad_values``), run on every file and state we read or write."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    pop, push, finite = stack.pop, stack.append, math.isfinite
    while stack:
        value, depth = pop()
        kind = type(value)
        if kind is dict or kind is list:
            if depth >= MAX_DEPTH:
                return False
            for item in value.values() if kind is dict else value:
                item_kind = type(item)
                if item_kind is dict or item_kind is list:
                    push((item, depth + 1))
                elif item_kind is float:
                    if not finite(item):
                        return False
                elif item_kind is int and not -MAX_INT - 1 <= item <= MAX_INT:
                    return False
        elif kind is float:
            if not finite(value):
                return False
        elif kind is int and not -MAX_INT - 1 <= value <= MAX_INT:
            return False
    return True


def bad_values(data: Any) -> Iterator[tuple[Path, str]]:
    """(path, message) for every value beyond the limits, walking without recursion."""
    if within(data):
        return
    stack: list[tuple[Any, Path]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, float):
            if not math.isfinite(value):
                yield path, f"{value!r} is not a finite number (NaN and infinity are not allowed)"
        elif isinstance(value, int) and not isinstance(value, bool):
            if not -MAX_INT - 1 <= value <= MAX_INT:
                yield path, "number too large (integers must fit in 64 bits)"
        elif isinstance(value, (dict, list)):
            if len(path) >= MAX_DEPTH:
                yield path, f"nested more than {MAX_DEPTH} levels deep"
                continue
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((v, (*path, k)) for k, v in reversed(list(items)))


def within_limits(data: Any, depth: int = 0) -> Any:
    """A copy of ``data`` that ``loads_strict`` will read back: non-finite numbers and integers
    beyond 64 bits become ``null``, and so does whatever sits deeper than ``MAX_DEPTH``. For data
    we write that holds values from outside (a job's sidecar in the status file)."""
    if depth == 0 and within(data):
        return data
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, int) and not isinstance(data, bool):
        return data if -MAX_INT - 1 <= data <= MAX_INT else None
    if isinstance(data, (dict, list)):
        if depth >= MAX_DEPTH:
            return None
        if isinstance(data, dict):
            return {k: within_limits(v, depth + 1) for k, v in data.items()}
        return [within_limits(v, depth + 1) for v in data]
    return data


def _no_constant(name: str) -> Any:
    raise JsonTextError(f"{name} is not a finite number (NaN and infinity are not allowed)")


def _where(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


def loads_strict(text: str | bytes) -> Any:
    """``json.loads`` within the limits; ``JsonTextError`` (never another exception) otherwise."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonTextError(f"not UTF-8 text (byte {exc.start})") from None
    try:
        data = json.loads(text.removeprefix("\ufeff"), parse_constant=_no_constant)
    except JsonTextError:
        raise
    except json.JSONDecodeError as exc:
        raise JsonTextError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise JsonTextError("invalid JSON: nested too deeply") from None
    except ValueError:  # an integer of more digits than Python converts (4300)
        raise JsonTextError("invalid JSON: a number with too many digits") from None
    for path, message in bad_values(data):
        raise JsonTextError(f"{_where(path)}: {message}")
    return data
