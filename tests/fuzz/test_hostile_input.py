"""Fuzzing the readers of hostile input (issue 15): the state loader takes any bytes to a
``StateFile`` or the corrupt error; the dashboard's request parsing takes any header and body to a
request or a 4xx, never another exception and never a wait."""

from __future__ import annotations

import contextlib
import json
import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.backends.probe import parse_probe
from reconciler.dashboard.actions import BadRequest, DecisionRequest
from reconciler.dashboard.body import MAX_BODY, content_length, parse_body, read_exactly
from reconciler.errors import TransportError
from reconciler.load.jsonpos import parse_json
from reconciler.load.schema_check import check
from reconciler.load.state import CorruptStateError, parse_state
from reconciler.load.yamlpos import parse_yaml
from reconciler.model.jsontext import JsonTextError, bad_values, within, within_limits
from reconciler.model.observed import TargetObservation
from reconciler.model.sidecar import MAX_BYTES as SIDECAR_MAX_BYTES
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


# The probe's answer (issue 15, items 2 and 6): a target is not trusted, so whatever it prints is
# a typed observation or a TransportError, never another exception (a 10,000-deep nesting raised
# RecursionError and 1e999 OverflowError, aborting the pass for every target).

PROBE_FIELDS = ["exp_id", "attempt", "token", "launched", "exit_code", "pid", "start_time", "age", "job_id"]
PROBE_TOKENS = st.sampled_from(
    ["[", "]", "{", "}", ",", ":", '"v"', "1", "NaN", "-Infinity", "1e999", "9" * 5000, "\ufffd", "null", '"x"']
)


def _probe_answer(value: object, where: int, nesting: int) -> str:
    deep = "[" * nesting + json.dumps(value) + "]" * nesting
    run = ["a_s0", 1, "tok", 1, None, 42, "9", 1.0, None]
    detail = {"exp_id": "a_s0", "attempt": 1, "alive": True, "sidecar": {"metrics": {"loss": 0.5}}, "log_tail": ["x"]}
    doc = {"v": 1, "host": "h", "root": "/r", "free_disk_gb": 1.0, "fields": PROBE_FIELDS, "runs": [run]}
    doc["details"] = [detail]
    text = json.dumps(doc)
    slots = [
        ('"free_disk_gb": 1.0', f'"free_disk_gb": {deep}'),
        ('"attempt": 1,', f'"attempt": {deep},'),
        ('["a_s0", 1,', f'["a_s0", {deep},'),
        ('"loss": 0.5', f'"loss": {deep}'),
        ('"log_tail": ["x"]', f'"log_tail": [{deep}]'),
        ('"sidecar": {', f'"sidecar": {{"notes": {deep}, '),
        ('42, "9"', f'{deep}, "9"'),
    ]
    old, new = slots[where % len(slots)]
    return text.replace(old, new, 1)


def _check_probe(stdout: str) -> None:
    try:
        observation = parse_probe("t", stdout)
    except TransportError:
        return
    assert isinstance(observation, TargetObservation)
    for run in observation.runs.values():
        assert isinstance(run.attempt, int) and (run.pid is None or isinstance(run.pid, int))
        assert all(isinstance(line, str) and len(line) <= 1000 for line in run.log_tail)
        if run.sidecar is not None:
            assert len(json.dumps(run.sidecar, allow_nan=False)) <= SIDECAR_MAX_BYTES + 2048


HUGE = st.sampled_from(["s" * 1_000_000, 10**4000, 1e308, -(2**200), "\x00\x1b[2J"])


@settings(max_examples=300, deadline=None)
@given(
    value=JSONISH | HUGE,
    where=st.integers(0, 20),
    nesting=st.sampled_from([0, 1, 3, 64, 500, 10_000]),
)
def test_a_probe_answer_is_an_observation_or_a_transport_error(value: object, where: int, nesting: int) -> None:
    _check_probe(_probe_answer(value, where, nesting))


@settings(max_examples=300, deadline=None)
@given(raw=HOSTILE_BYTES | st.lists(PROBE_TOKENS, max_size=80).map(lambda t: "".join(t).encode()))
def test_probe_answer_bytes_are_an_observation_or_a_transport_error(raw: bytes) -> None:
    _check_probe(raw.decode("utf-8", "replace"))  # as the transports decode what a target prints


def test_the_attackers_probe_answers_are_transport_errors_or_observations() -> None:
    """The exact answers of the issue: nested 10,000 deep, and ``1e999``."""
    base = _probe_answer(None, 0, 0)
    for stdout in (
        base.replace('"free_disk_gb": 1.0', '"free_disk_gb": ' + "[" * 10_000 + "]" * 10_000),
        base.replace('"attempt": 1,', '"attempt": 1e999,'),
        base.replace('["a_s0", 1,', '["a_s0", 1e999,'),
        base.replace('"alive": true', '"alive": true, "exp_id": ' + "[" * 10_000 + "]" * 10_000),
    ):
        _check_probe(stdout)
