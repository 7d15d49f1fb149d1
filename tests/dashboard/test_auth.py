"""The token rule: bound beyond loopback, every request without the token is refused."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.dashboard import Dashboard
from reconciler.dashboard.auth import Guard, is_loopback
from tests.dashboard.http import request

TOKEN = "a-test-token-of-enough-length"
ROUTES = ("", "index.html", "static/app.js", "api/snapshot", "api/summary", "api/experiments", "api/tables",
          "api/experiments/broken", "api/experiments/broken/history", "api/events", "nowhere")  # fmt: skip


@pytest.fixture
def exposed(project: Path) -> Iterator[Dashboard]:
    """Listening on every address (0.0.0.0), reached here through 127.0.0.1."""
    dash = Dashboard(project, bind="0.0.0.0", port=0, token=TOKEN).start()
    try:
        yield dash
    finally:
        dash.stop()


def local(dash: Dashboard, path: str = "") -> str:
    return f"http://127.0.0.1:{dash.port}/{path}"


def test_loopback_needs_no_token_but_anything_else_does() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("::")
    Guard("127.0.0.1", None)
    for bind in ("0.0.0.0", "::", "10.1.2.3"):
        with pytest.raises(ValueError, match="needs a token"):
            Guard(bind, None)


def test_every_request_without_the_token_is_refused(exposed: Dashboard) -> None:
    for path in ROUTES:
        assert request(local(exposed, path)).status == 401, path
        assert request(local(exposed, path), headers={"X-Reconciler-Token": "wrong"}).status == 403, path
        assert request(local(exposed, path), headers={"Cookie": "reconciler_token=wrong"}).status == 403, path
    body = {"action": "retry", "exp_id": "broken"}
    assert request(local(exposed, "api/decisions"), method="POST", body=body).status == 401
    assert request(local(exposed, "api/decisions?token=nope"), method="POST", body=body).status == 403


def test_the_token_is_accepted_from_a_header_a_cookie_or_a_link(exposed: Dashboard) -> None:
    for headers in ({"Authorization": f"Bearer {TOKEN}"}, {"X-Reconciler-Token": TOKEN},
                    {"Cookie": f"other=1; reconciler_token={TOKEN}"}):  # fmt: skip
        assert request(local(exposed, "api/summary"), headers=headers).status == 200
    assert request(local(exposed, f"api/summary?token={TOKEN}")).status == 200
    link = request(local(exposed, f"?token={TOKEN}"))
    assert link.status == 303 and link.headers["Location"] == "/"
    cookie = link.headers["Set-Cookie"]
    assert cookie.startswith(f"reconciler_token={TOKEN};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_loopback_refuses_foreign_host_names(dashboard: Dashboard) -> None:
    """DNS rebinding: a page on another name that resolves to 127.0.0.1 gets nothing."""
    assert request(dashboard.url + "api/summary", headers={"Host": "evil.example"}).status == 403
    assert request(dashboard.url + "api/summary", headers={"Host": f"localhost:{dashboard.port}"}).status == 200


def test_the_command_prints_a_generated_token_once_and_requires_it(project: Path) -> None:
    code = "from reconciler.commands.dashboard import dashboard_command; dashboard_command()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "-C", str(project), "--bind", "0.0.0.0", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={k: v for k, v in os.environ.items() if k != "RECONCILER_DASHBOARD_TOKEN"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while not any("?token=" in line for line in lines):
            assert time.monotonic() < deadline, lines
            lines.append(proc.stdout.readline())
        found = re.search(r"http://0\.0\.0\.0:(\d+)/\?token=(\S+)", "".join(lines))
        assert found, lines
        port, token = found.groups()
        base = f"http://127.0.0.1:{port}/"
        assert request(base + "api/summary").status == 401
        assert request(base + "api/summary", headers={"Authorization": f"Bearer {token}"}).status == 200
        assert "".join(lines).count(token) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
