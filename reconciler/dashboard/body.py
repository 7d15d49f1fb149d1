"""A POST body, read and parsed within limits: a visitor's request never blocks or kills a thread.

Used by the server for ``POST /api/decisions``. Each step answers a 4xx ``BadRequest``:

- ``Content-Length`` must be one plain decimal number (411 when missing or with
  ``Transfer-Encoding``; 400 when negative, signed, not a number or given twice with two values);
  413 above ``MAX_BODY``, before a byte of the body is read;
- the body must arrive within ``BODY_TIMEOUT`` seconds in all (408), however slowly it trickles;
- it must be UTF-8 JSON within ``jsontext``'s limits (no NaN or infinity, nesting at most
  ``MAX_DEPTH`` deep, 64-bit integers): else 400.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from reconciler.dashboard.actions import BadRequest
from reconciler.model.jsontext import JsonTextError, loads_strict

MAX_BODY = 64 * 1024
"""Bytes a request body may have."""
BODY_TIMEOUT = 10.0
"""Seconds the whole body may take to arrive."""

_LENGTH = re.compile(r"[0-9]{1,12}")


class _Headers(Protocol):
    def get_all(self, name: str, failobj: Any = None) -> list[str] | None: ...


def content_length(headers: _Headers | Mapping[str, str]) -> int:
    """The announced body length; ``BadRequest`` (400, 411 or 413) when it cannot be trusted."""
    if hasattr(headers, "get_all"):
        values = headers.get_all("Content-Length") or []
        chunked = bool(headers.get_all("Transfer-Encoding"))
    else:
        one = headers.get("Content-Length")
        values = [one] if one is not None else []
        chunked = headers.get("Transfer-Encoding") is not None
    if chunked:
        raise BadRequest("send the body with a Content-Length (Transfer-Encoding is not accepted)", status=411)
    distinct = {v.strip() for v in values}
    if not distinct:
        raise BadRequest("a Content-Length is required", status=411)
    if len(distinct) > 1:
        raise BadRequest("Content-Length is given twice with different values")
    (text,) = distinct
    if not _LENGTH.fullmatch(text):
        raise BadRequest(f"Content-Length must be a non-negative decimal number, not {text[:20]!r}")
    length = int(text)
    if length > MAX_BODY:
        raise BadRequest(f"body too large ({length} bytes; at most {MAX_BODY})", status=413)
    return length


def read_exactly(
    read1: Callable[[int], bytes],
    sock: socket.socket,
    length: int,
    timeout: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> bytes:
    """``length`` bytes from a buffered reader over ``sock``, all within ``timeout`` seconds.

    The socket's timeout is set before each read to what is left, so a body sent one byte at a
    time cannot hold the thread past the deadline. 408 when it is late, 400 when it ends early.
    """
    timeout = BODY_TIMEOUT if timeout is None else timeout
    deadline = clock() + timeout
    chunks: list[bytes] = []
    left = length
    previous = sock.gettimeout()
    try:
        while left > 0:
            remaining = deadline - clock()
            if remaining <= 0:
                raise BadRequest(f"the body did not arrive within {timeout:g} s", status=408)
            sock.settimeout(remaining)
            try:
                chunk = read1(min(left, 65536))
            except TimeoutError:
                raise BadRequest(f"the body did not arrive within {timeout:g} s", status=408) from None
            if not chunk:
                raise BadRequest(f"the body ended after {length - left} of {length} bytes")
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        sock.settimeout(previous)
    return b"".join(chunks)


def parse_body(raw: bytes) -> Any:
    """The JSON document of a body (``None`` when empty); ``BadRequest`` (400) otherwise."""
    if not raw.strip():
        return None
    try:
        return loads_strict(raw)
    except JsonTextError as exc:
        raise BadRequest(f"the body is not acceptable JSON: {exc}") from None
