"""A small urllib client for the dashboard tests (no redirects followed, errors as answers)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def request(
    url: str, *, method: str = "GET", headers: dict[str, str] | None = None, body: Any = None, raw: bytes | None = None
) -> Answer:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    hdrs = dict(headers or {})
    if body is not None:
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with _opener.open(req, timeout=150) as res:
            return Answer(res.status, dict(res.headers.items()), res.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, dict(exc.headers.items()), exc.read())


def get_json(url: str, **kw: Any) -> Any:
    answer = request(url, **kw)
    assert answer.status == 200, (answer.status, answer.body[:300])
    return answer.json()
