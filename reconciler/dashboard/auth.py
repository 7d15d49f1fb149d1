"""Who may talk to the dashboard: the token rule, and the checks against other web pages.

- Bound to loopback only (``127.0.0.1``, ``::1``, ``localhost``), no token is needed unless one
  was given. Bound to any other address, a token is required: generated when not given,
  printed once, and checked on every request (page, static files, API and SSE alike). A request
  carries it as ``Authorization: Bearer <t>``, ``X-Reconciler-Token: <t>``, or the cookie that a
  ``?token=<t>`` link sets. Tokens are compared with ``hmac.compare_digest``.
- Requests that change something (``POST``) must be JSON and, when the browser says where they
  come from (``Origin``), come from the dashboard's own origin: a page elsewhere cannot press a
  button. On loopback the ``Host`` header must name a loopback host (DNS rebinding).

Pure: the server passes headers in and gets a verdict out.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

COOKIE = "reconciler_token"
HEADER = "X-Reconciler-Token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Refusal:
    status: HTTPStatus
    reason: str


@dataclass(frozen=True)
class Guard:
    bind: str
    token: str | None
    """``None``: no token (allowed on loopback only)."""

    def __post_init__(self) -> None:
        if self.token is None and not is_loopback(self.bind):
            raise ValueError(f"binding to {self.bind} needs a token")

    def presented(self, headers: Mapping[str, str], query_token: str | None) -> str | None:
        """The token a request carries, from the header, the cookie, or the ``?token=`` link."""
        auth = headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        if headers.get(HEADER):
            return headers[HEADER].strip()
        if query_token:
            return query_token
        raw = headers.get("Cookie")
        if raw:
            try:
                morsel = SimpleCookie(raw).get(COOKIE)
            except CookieError:
                return None
            return morsel.value if morsel else None
        return None

    def check(self, method: str, headers: Mapping[str, str], query_token: str | None) -> Refusal | None:
        """``None`` when the request may go on; else why it is refused."""
        if self.token is not None:
            given = self.presented(headers, query_token)
            if given is None:
                return Refusal(HTTPStatus.UNAUTHORIZED, "a token is required (?token=..., or the Authorization header)")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return Refusal(HTTPStatus.FORBIDDEN, "wrong token")
        if is_loopback(self.bind) and not _loopback_host(headers.get("Host") or ""):
            return Refusal(HTTPStatus.FORBIDDEN, "the Host header must name a loopback address")
        if method == "POST":
            if (headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/json":
                return Refusal(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send application/json")
            origin = headers.get("Origin")
            if origin and urlsplit(origin).netloc != (headers.get("Host") or ""):
                return Refusal(HTTPStatus.FORBIDDEN, "cross-origin requests are refused")
        return None

    def cookie(self) -> str:
        """The ``Set-Cookie`` value that lets a browser, once it followed a ``?token=`` link, on."""
        return f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"


def _loopback_host(host: str) -> bool:
    name = urlsplit(f"//{host}").hostname or ""
    return is_loopback(name)
