"""A dashboard visitor's hostile requests (issue 15, item 6): a bad Content-Length, a body nested
60,000 deep, NaN, huge numbers, non-UTF-8, a body that never arrives. Each is a 4xx at once (or at
the body deadline), never a 500, a dropped connection or a thread left blocked; the server answers
the next request."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from reconciler.dashboard.server import Dashboard
from tests.engine.project import git, make_project


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    project = make_project(tmp_path_factory.mktemp("dash"), seeds=1)
    server = Dashboard(project, port=0).start()
    try:
        yield server
    finally:
        server.stop()


def _exchange(dash: Dashboard, head: str, payload: bytes = b"", timeout: float = 5.0) -> tuple[int, dict[str, object]]:
    """Send a raw request; the status and JSON body of the answer (which must come within ``timeout``)."""
    with socket.create_connection(("127.0.0.1", dash.port), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + payload)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed without an answer: {data!r}"
            data += chunk
        header, _, rest = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1]) for line in header.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            chunk = sock.recv(65536)
            assert chunk
            rest += chunk
    status = int(header.split(b" ", 2)[1])
    return status, json.loads(rest[:length])


def _post(length: str | None, extra: str = "") -> str:
    line = f"Content-Length: {length}\n" if length is not None else ""
    return (
        "POST /api/decisions HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\n"
        f"{line}{extra}Connection: close\n\n"
    )


def _still_answers(dash: Dashboard) -> None:
    status, doc = _exchange(dash, "GET /api/summary HTTP/1.1\nHost: 127.0.0.1\nConnection: close\n\n")
    assert status == 200, doc


@pytest.mark.parametrize(
    ("length", "extra", "status", "message"),
    [
        ("-1", "", 400, "Content-Length must be a non-negative decimal number, not '-1'"),
        ("abc", "", 400, "Content-Length must be a non-negative decimal number, not 'abc'"),
        ("+5", "", 400, "Content-Length must be a non-negative decimal number, not '+5'"),
        ("99999999999999999999", "", 400, "Content-Length must be a non-negative decimal number"),
        ("1000000000", "", 413, "body too large (1000000000 bytes; at most 65536)"),
        (None, "", 411, "a Content-Length is required"),
        ("5", "Transfer-Encoding: chunked\n", 411, "Transfer-Encoding is not accepted"),
        ("5", "Content-Length: 6\n", 400, "Content-Length is given twice with different values"),
    ],
)
def test_a_bad_content_length_is_refused_at_once(
    dash: Dashboard, length: str | None, extra: str, status: int, message: str
) -> None:
    started = time.monotonic()
    got, doc = _exchange(dash, _post(length, extra), timeout=3.0)
    assert (got, message in str(doc["error"])) == (status, True), doc
    assert time.monotonic() - started < 3.0
    _still_answers(dash)


BODIES: dict[str, tuple[bytes, str]] = {
    "nested_60000": (b"[" * 60_000, "nested too deeply"),
    "nested_objects": (b'{"a":' * 12_000, "nested too deeply"),
    "nested_100": (b'{"action": "retry", "exp_id": ' + b"[" * 100 + b"]" * 100 + b"}", "nested more than 64"),
    "nan": (b'{"action": "approve_stage", "stage": NaN}', "NaN is not a finite number"),
    "infinity": (b'{"action": "approve_stage", "stage": -Infinity}', "-Infinity is not a finite number"),
    "overflow": (b'{"action": "approve_stage", "stage": 1e999}', "inf is not a finite number"),
    "huge_int": (b'{"action": "approve_stage", "stage": 1' + b"0" * 5000 + b"}", "invalid JSON"),
    "big_int": (b'{"action": "approve_stage", "stage": 1' + b"0" * 30 + b"}", "number too large"),
    "not_utf8": (b'{"action": "retry", "exp_id": "\xff\xfe"}', "not UTF-8 text"),
    "not_json": (b"action=retry", "invalid JSON"),
    "nul_in_note": (b'{"action": "retry", "exp_id": "job_s0", "note": "a\\u0000b"}', "a NUL character"),
}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_a_hostile_body_is_a_400(dash: Dashboard, name: str) -> None:
    payload, message = BODIES[name]
    assert len(payload) <= 64 * 1024  # under the size cap: the parser itself must refuse it
    status, doc = _exchange(dash, _post(str(len(payload))), payload)
    assert status == 400, doc
    assert message in str(doc["error"]), doc
    _still_answers(dash)


def test_a_body_that_never_arrives_times_out(dash: Dashboard, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("reconciler.dashboard.body.BODY_TIMEOUT", 1.0)
    started = time.monotonic()
    status, doc = _exchange(dash, _post("100"), b'{"act', timeout=5.0)
    assert status == 408, doc
    assert "the body did not arrive within 1 s" in str(doc["error"])
    assert time.monotonic() - started < 4.0
    _still_answers(dash)


def test_a_body_sent_slowly_cannot_hold_the_thread_past_the_deadline(
    dash: Dashboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("reconciler.dashboard.body.BODY_TIMEOUT", 1.0)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", dash.port), timeout=5.0) as sock:
        sock.sendall(_post("100").replace("\n", "\r\n").encode())
        answer = b""
        for _ in range(40):  # a byte every 0.1 s: each read is quick, the whole body is late
            try:
                sock.sendall(b" ")
            except OSError:
                break
            time.sleep(0.1)
        sock.settimeout(5.0)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < 6.0


def test_a_hostile_committed_env_verdict_does_not_break_the_api(tmp_path_factory: pytest.TempPathFactory) -> None:
    project = make_project(tmp_path_factory.mktemp("dash-env"), seeds=1)
    (project / "progress").mkdir()
    (project / "progress/env_local.json").write_bytes(b"[" * 200_000)
    git(project, "add", "progress/env_local.json")
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "hostile verdict")
    server = Dashboard(project, port=0).start()
    try:
        for route in ("targets", "snapshot"):
            status, doc = _exchange(server, f"GET /api/{route} HTTP/1.1\nHost: 127.0.0.1\nConnection: close\n\n")
            assert status == 200, doc
    finally:
        server.stop()
