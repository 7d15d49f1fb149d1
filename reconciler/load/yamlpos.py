"""YAML text -> ``Document`` with the line and column of every mapping key and sequence item.

First step of loading the YAML kinds (config, dispatch, decisions). Built on PyYAML's composer: the
text is composed to nodes (which carry marks), then converted to plain data here, recording a
position per JSON path. Differences from ``yaml.safe_load``, all on purpose:

- mapping keys are the key's text (``on:`` stays ``"on"``, ``1:`` stays ``"1"``), since every key
  of the contract is a string;
- timestamps stay strings (``at: 2026-11-26T10:00:00+00:00`` is text, as the schema wants);
- a key repeated in one mapping is a problem (PyYAML silently keeps the last one);
- recursive aliases and alias bombs are problems instead of hangs.

PyYAML errors are converted to a ``Problem`` at the parser's line and column.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

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

MAX_ALIAS_VALUES = 200_000
"""Values that aliases (``*name``, ``<<: *name``) may add to a document before it is refused as an
alias bomb. Values written out in the text do not count: a file of 100,000 experiments loads."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
_KEEP_TEXT_TAGS = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary"}
_JSON_SCALARS = (str, int, float, bool, type(None))


class _Abort(Exception):
    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def _pos(node: Node) -> Position:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Converter:
    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.positions: dict[JsonPath, Position] = {}
        self.problems: list[Problem] = []
        self.seen: set[int] = set()
        self.repeated = 0
        self.stack: set[int] = set()

    def convert(self, node: Node, path: JsonPath) -> Any:
        if id(node) in self.seen:  # reached again through an alias: a value the text did not spell out
            self.repeated += 1
            if self.repeated > MAX_ALIAS_VALUES:
                message = f"document too large: aliases expand to more than {MAX_ALIAS_VALUES} values (an alias bomb?)"
                raise _Abort(message, _pos(node))
        else:
            self.seen.add(id(node))
        if id(node) in self.stack:
            raise _Abort("recursive alias", _pos(node))
        self.stack.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if isinstance(node, SequenceNode):
                return self._sequence(node, path)
            return self._scalar(node)
        finally:
            self.stack.discard(id(node))

    def _mapping(self, node: MappingNode, path: JsonPath) -> dict[str, Any]:
        own = sum(1 for key, _ in node.value if key.tag != _MERGE_TAG)
        self.loader.flatten_mapping(node)  # resolves "<<" merge keys in place
        first_own = len(node.value) - own
        out: dict[str, Any] = {}
        seen: set[str] = set()
        for i, (key_node, value_node) in enumerate(node.value):
            if not isinstance(key_node, ScalarNode):
                line, col = _pos(key_node)
                self.problems.append(
                    Problem(self.file, line, col, format_path(path), "mapping keys must be plain text")
                )
                continue
            key = str(key_node.value)
            child = (*path, key)
            if i >= first_own:
                if key in seen:
                    line, col = _pos(key_node)
                    self.problems.append(
                        Problem(self.file, line, col, format_path(child), f"duplicate key '{key}' (the last one wins)")
                    )
                seen.add(key)
            self.positions[child] = _pos(key_node)
            out[key] = self.convert(value_node, child)
        return out

    def _sequence(self, node: SequenceNode, path: JsonPath) -> list[Any]:
        out: list[Any] = []
        for i, item in enumerate(node.value):
            child = (*path, i)
            self.positions[child] = _pos(item)
            out.append(self.convert(item, child))
        return out

    def _scalar(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode) or node.tag in _KEEP_TEXT_TAGS:
            return str(node.value)
        value = self.loader.construct_object(node)
        return value if isinstance(value, _JSON_SCALARS) else str(node.value)


_FAST_LOADER: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)
"""libyaml's loader, when PyYAML was built with it (several times faster on large dispatch files)."""


def _parse(loader_class: type[yaml.SafeLoader], text: str, file: str) -> tuple[Document | None, list[Problem]]:
    loader = loader_class(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return Document(file, None, {(): (1, 1)}), []
        conv = _Converter(loader, file)
        conv.positions[()] = _pos(root)
        data = conv.convert(root, ())
        return Document(file, data, conv.positions), conv.problems
    finally:
        loader.dispose()


def parse_yaml(text: str, file: str) -> tuple[Document | None, list[Problem]]:
    """Parse ``text``; the document is ``None`` when the text is not YAML at all.

    libyaml parses first when present; on any error the pure-Python parser runs again, so that
    messages and positions are the same on every machine (and libyaml's extra strictness on a few
    constructs never rejects a file PyYAML accepts).
    """
    if _FAST_LOADER is not None:
        try:
            return _parse(_FAST_LOADER, text, file)
        except _Abort as exc:
            return None, [file_problem(file, f"invalid YAML: {exc.message}", *exc.position)]
        except (yaml.YAMLError, RecursionError):
            pass
    try:
        return _parse(yaml.SafeLoader, text, file)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        what = exc.problem or exc.context or "malformed"
        if exc.context and what.startswith("but "):
            what = f"{exc.context}, {what}"
        return None, [file_problem(file, f"invalid YAML: {what}", line, col)]
    except yaml.reader.ReaderError as exc:
        line, col = offset_position(line_starts(text), exc.position)
        return None, [file_problem(file, f"invalid YAML: {exc.reason} ({_char(exc.character)})", line, col)]
    except yaml.YAMLError as exc:
        return None, [file_problem(file, f"invalid YAML: {exc}")]
    except _Abort as exc:
        return None, [file_problem(file, f"invalid YAML: {exc.message}", *exc.position)]
    except RecursionError:
        return None, [file_problem(file, "invalid YAML: nested too deeply")]


def _char(character: object) -> str:
    return f"U+{character:04X}" if isinstance(character, int) else repr(character)
