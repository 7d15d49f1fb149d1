"""Fuzzing the readers of hostile input (issue 15): the state loader takes any bytes to a
``StateFile`` or the corrupt error; the dashboard's request parsing takes any header and body to a
request or a 4xx, never another exception and never a wait."""

from __future__ import annotations

import contextlib
import json
import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.dashboard.actions import BadRequest, DecisionRequest
from reconciler.dashboard.body import MAX_BODY, content_length, parse_body, read_exactly
from reconciler.load.jsonpos import parse_json
from reconciler.load.schema_check import check
from reconciler.load.state import CorruptStateError, parse_state
from reconciler.load.yamlpos import parse_yaml
from reconciler.model.jsontext import JsonTextError, bad_values, within, within_limits
from reconciler.model.status import StateFile

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()  # NaN and infinities included
    | st.text(max_size=8)
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)
TOKENS = st.sampled_from(
    ["[", "]", "{", "}", ",", ":", '"id"', '"experiments"', "NaN", "-Infinity", "1e999", "1" * 40, "\xff", "null"]
)


def _state_like(doc: object, depth: int) -> bytes:
    text = json.dumps({"version": 1, "project": "p", "experiments": [{"id": "a", "notes": doc}]})
    return ("[" * depth + text + "]" * depth).encode()


HOSTILE_BYTES = (
    st.binary(max_size=300)
    | st.lists(TOKENS, max_size=60).map(lambda t: "".join(t).encode("utf-8", "surrogateescape"))
    | st.builds(_state_like, JSONISH, st.sampled_from([0, 1, 70, 5000]))
    | st.builds(lambda n, c: c * n, st.integers(1, 300_000), st.sampled_from([b"[", b'{"a":', b"-"]))
)


@settings(max_examples=300, deadline=None)
@given(raw=HOSTILE_BYTES)
def test_the_state_loader_gives_a_state_or_the_corrupt_error(raw: bytes) -> None:
    try:
        state = StateFile.loads(raw)
    except JsonTextError:
        pass
    except (TypeError, KeyError, AttributeError, ValueError):  # the model's own refusals of odd fields
        pass
    else:
        assert json.loads(state.dumps())  # what we read, we write back as valid JSON
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return
    with contextlib.suppress(CorruptStateError):
        parse_state(text)


HEADER_VALUES = st.sampled_from(["-1", "0", "5", "+5", " 7 ", "abc", "1e3", "0x10", "", "9" * 20]) | st.text(
    max_size=12
)


@settings(max_examples=300, deadline=None)
@given(lengths=st.lists(HEADER_VALUES, max_size=3), chunked=st.booleans())
def test_content_length_is_a_small_number_or_a_4xx(lengths: list[str], chunked: bool) -> None:
    headers = _Headers(lengths, chunked)
    try:
        length = content_length(headers)
    except BadRequest as exc:
        assert exc.status in (400, 411, 413)
        return
    assert 0 <= length <= MAX_BODY
    assert not chunked


@settings(max_examples=300, deadline=None)
@given(raw=HOSTILE_BYTES | st.builds(lambda d: json.dumps(d).encode(), JSONISH))
def test_a_body_is_a_request_or_a_400(raw: bytes) -> None:
    try:
        DecisionRequest.from_json(parse_body(raw))
    except BadRequest as exc:
        assert exc.status == 400


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=200), announced=st.integers(0, 400))
def test_reading_a_body_ends_with_its_bytes_or_a_4xx(data: bytes, announced: int) -> None:
    left, right = socket.socketpair()
    try:
        left.sendall(data)
        left.shutdown(socket.SHUT_WR)
        reader = right.makefile("rb")
        try:
            got = read_exactly(reader.read1, right, announced, timeout=2.0)
        except BadRequest as exc:
            assert exc.status in (400, 408)
            assert len(data) < announced
        else:
            assert got == data[:announced]
        finally:
            reader.close()
    finally:
        left.close()
        right.close()


class _Headers:
    def __init__(self, lengths: list[str], chunked: bool) -> None:
        self.values = {"Content-Length": lengths, "Transfer-Encoding": ["chunked"] if chunked else []}

    def get_all(self, name: str, failobj: object = None) -> list[str] | None:
        return self.values.get(name) or None


YAML_TOKENS = st.sampled_from(
    [
        "a: ",
        "- ",
        "&x ",
        "*x",
        "<<: *x",
        "{",
        "}",
        "[",
        "]",
        ", ",
        "\n",
        "  ",
        ".nan",
        ".inf",
        "1e999",
        "!!str ",
        "? ",
        "'",
        '"',
        "\t",
        "\x1b",
        "1" * 30,
    ]
)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200) | st.lists(YAML_TOKENS, max_size=60).map("".join))
def test_the_spec_parsers_give_a_document_or_problems(text: str) -> None:
    for parse in (parse_yaml, parse_json):
        doc, problems = parse(text, "dispatch/f.yaml")
        assert doc is not None or problems
        if doc is not None:
            checked = check(doc, "dispatch")
            assert all(str(p).startswith("dispatch/f.yaml:") for p in checked.problems)


@settings(max_examples=300, deadline=None)
@given(doc=JSONISH, depth=st.sampled_from([0, 1, 63, 64, 65, 200]))
def test_the_fast_limit_check_agrees_with_the_reported_problems(doc: object, depth: int) -> None:
    for _ in range(depth):
        doc = [doc]
    problems = list(bad_values(doc))
    assert within(doc) == (not problems)
    cleaned = within_limits(doc)
    assert within(cleaned)
    json.dumps(cleaned, allow_nan=False)  # valid JSON: raises on NaN or infinity
