"""YAML and JSON parsing with positions: every key and item has its 1-based line and column."""

from __future__ import annotations

import pytest

from reconciler.load.document import Document, format_path
from reconciler.load.jsonpos import parse_json
from reconciler.load.yamlpos import parse_yaml


def test_yaml_positions_of_keys_and_items() -> None:
    doc, problems = parse_yaml("version: 1\nlist:\n  - a\n  - {b: 2}\n", "f.yaml")
    assert problems == []
    assert doc is not None
    assert doc.data == {"version": 1, "list": ["a", {"b": 2}]}
    assert doc.positions[("version",)] == (1, 1)
    assert doc.positions[("list",)] == (2, 1)
    assert doc.positions[("list", 0)] == (3, 5)
    assert doc.positions[("list", 1)] == (4, 5)
    assert doc.positions[("list", 1, "b")] == (4, 6)


def test_yaml_keeps_key_text_and_timestamps_as_strings() -> None:
    doc, _ = parse_yaml("on: yes\n1: x\nat: 2026-11-26T10:00:00+00:00\nday: 2026-11-26\n", "f.yaml")
    assert doc is not None
    assert doc.data == {"on": True, "1": "x", "at": "2026-11-26T10:00:00+00:00", "day": "2026-11-26"}


def test_yaml_merge_keys_resolve_and_own_keys_win_without_a_duplicate_problem() -> None:
    doc, problems = parse_yaml("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert problems == []
    assert doc is not None
    assert doc.data["m"] == {"x": 1, "y": 3}


def test_yaml_duplicate_key_is_a_problem_at_the_second_key() -> None:
    doc, problems = parse_yaml("a: 1\nb: 2\na: 3\n", "f.yaml")
    assert doc is not None
    assert [str(p) for p in problems] == ["f.yaml:3:1: a: duplicate key 'a' (the last one wins)"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: [b\nc: d\n", "f.yaml:2:2: (file): invalid YAML: expected ',' or ']', but got ':'"),
        ("a: b\nc: \x01\n", "f.yaml:2:4: (file): invalid YAML: special characters are not allowed (U+0001)"),
        ("a: &a [*a]\n", "f.yaml:1:4: (file): invalid YAML: recursive alias"),
        ("a: !custom x\n", "f.yaml:1:4: (file): invalid YAML: could not determine a constructor for the tag '!custom'"),
        (
            "a: 1\n---\nb: 2\n",
            "f.yaml:2:1: (file): invalid YAML: expected a single document in the stream, but found another document",
        ),
        ("[" * 1500, "f.yaml:1:1: (file): invalid YAML: nested too deeply"),
    ],
)
def test_malformed_yaml_is_one_problem_at_the_parser_position(text: str, expected: str) -> None:
    doc, problems = parse_yaml(text, "f.yaml")
    assert doc is None
    assert [str(p) for p in problems] == [expected]


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        refs = ",".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    doc, problems = parse_yaml("\n".join(lines) + "\n", "f.yaml")
    assert doc is None
    assert "document too large" in problems[0].message


def test_empty_yaml_is_an_empty_document() -> None:
    doc, problems = parse_yaml("# nothing\n", "f.yaml")
    assert problems == []
    assert doc is not None
    assert doc.data is None


def test_json_positions_and_numbers() -> None:
    text = '{\n  "a": [1, 2.5e3, "x\\"y"],\n  "b": {"c": null}\n}\n'
    doc, problems = parse_json(text, "f.json")
    assert problems == []
    assert doc is not None
    assert doc.data == {"a": [1, 2500.0, 'x"y'], "b": {"c": None}}
    assert doc.positions[("a",)] == (2, 3)
    assert doc.positions[("a", 1)] == (2, 12)
    assert doc.positions[("a", 2)] == (2, 19)
    assert doc.positions[("b", "c")] == (3, 9)


def test_json_duplicate_key_and_bom() -> None:
    doc, problems = parse_json('\ufeff{"a": 1, "a": 2}', "f.json")
    assert doc is not None
    assert doc.data == {"a": 2}
    assert [str(p) for p in problems] == ["f.json:1:10: a: duplicate key 'a' (the last one wins)"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1,\n 2,,]", "f.json:2:4: (file): invalid JSON: Expecting value"),
        ("", "f.json:1:1: (file): invalid JSON: Expecting value"),
        ("[" * 100_000, "f.json:1:1: (file): invalid JSON: nested too deeply"),
    ],
)
def test_malformed_json(text: str, expected: str) -> None:
    doc, problems = parse_json(text, "f.json")
    assert doc is None
    assert [str(p) for p in problems] == [expected]


def test_format_path_and_locate_falls_back_to_the_nearest_parent() -> None:
    assert format_path(("experiments", 2, "seeds", 0)) == "experiments[2].seeds[0]"
    assert format_path(("targets", "lab1", "port")) == "targets.lab1.port"
    assert format_path(("set_args", "--batch-size")) == 'set_args["--batch-size"]'
    assert format_path((1, "id")) == "[1].id"
    doc = Document("f.yaml", {}, {(): (1, 1), ("a",): (3, 2)})
    assert doc.locate(("a", "b", 0)) == (3, 2)
    assert doc.locate(("z",)) == (1, 1)
