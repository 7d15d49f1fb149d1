"""Delivery through real HTTP on loopback: Telegram and webhook payloads, retry after a server
was down, no duplicates across calls, and ``deliver`` never raising."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from reconciler.notify import OUTBOX, Notification, NotifySettings, deliver
from tests.notify.conftest import Recorder

TOKEN = "123456:test-token-not-a-secret"


def settings(server_url: str) -> NotifySettings:
    return NotifySettings(telegram_api=server_url, timeout_seconds=2.0)


def env(server: Recorder, *, telegram: bool = True, webhook: bool = True) -> dict[str, str]:
    out: dict[str, str] = {}
    if telegram:
        out.update(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_CHAT_ID="42")
    if webhook:
        out["RECONCILER_WEBHOOK_URL"] = f"{server.url}/hooks/T000/B000"
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ONE = [Notification("escalation:a_s0:2026-11-26T10:00:00+00:00", "a_s0 needs a decision", "escalation")]


def test_telegram_and_webhook_payloads(tmp_path: Path, http_server: Recorder) -> None:
    report = deliver(tmp_path, ONE, env(http_server), settings(http_server.url))
    assert report.ok and report.sent == [ONE[0].key] and report.pending == 0
    assert sorted(http_server.requests, key=lambda r: r[0]) == [
        (
            f"/bot{TOKEN}/sendMessage",
            {"chat_id": "42", "text": "a_s0 needs a decision", "disable_web_page_preview": True},
        ),
        ("/hooks/T000/B000", {"text": "a_s0 needs a decision"}),
    ]
    outbox = json.loads((tmp_path / OUTBOX).read_text())
    assert outbox == {"version": 1, "pending": [], "sent": [ONE[0].key]}


def test_no_duplicates_across_calls(tmp_path: Path, http_server: Recorder) -> None:
    for _ in range(3):
        deliver(tmp_path, ONE, env(http_server), settings(http_server.url))
    assert len(http_server.requests) == 2  # one per channel, once


def test_server_down_then_retried(tmp_path: Path, http_server: Recorder) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    hook_env = {"RECONCILER_WEBHOOK_URL": f"{down}/hook"}
    report = deliver(tmp_path, ONE, hook_env, settings(down))
    assert report.sent == [] and report.pending == 1 and "webhook" in report.failed
    assert f"{down}/hook" not in report.failed["webhook"]  # the URL (a secret) is not in the message
    pending = json.loads((tmp_path / OUTBOX).read_text())["pending"]
    assert [p["key"] for p in pending] == [ONE[0].key] and pending[0]["error"].startswith("webhook: ")

    # the next pass: the receiver is up, nothing new to add; the pending one goes out, once
    report = deliver(tmp_path, [], env(http_server, telegram=False), settings(http_server.url))
    assert report.sent == [ONE[0].key] and report.pending == 0
    deliver(tmp_path, ONE, env(http_server, telegram=False), settings(http_server.url))
    assert http_server.requests == [("/hooks/T000/B000", {"text": "a_s0 needs a decision"})]


def test_one_channel_failing_keeps_only_its_part(tmp_path: Path, http_server: Recorder) -> None:
    http_server.body = b'{"ok": false, "description": "Unauthorized"}'
    report = deliver(tmp_path, ONE, env(http_server), settings(http_server.url))
    assert report.pending == 1 and set(report.failed) == {"telegram"}
    assert TOKEN not in report.failed["telegram"]
    http_server.body = b'{"ok": true}'
    report = deliver(tmp_path, [], env(http_server), settings(http_server.url))
    assert report.sent == [ONE[0].key]
    paths = [p for p, _ in http_server.requests]
    assert paths.count("/hooks/T000/B000") == 1 and paths.count(f"/bot{TOKEN}/sendMessage") == 2


def test_http_error_is_reported_without_the_token(tmp_path: Path, http_server: Recorder) -> None:
    http_server.status = 500
    http_server.body = f'{{"echo": "bot{TOKEN}"}}'.encode()
    report = deliver(tmp_path, ONE, env(http_server, webhook=False), settings(http_server.url))
    assert report.failed["telegram"].startswith("HTTP 500")
    assert TOKEN not in report.failed["telegram"] and TOKEN not in (tmp_path / OUTBOX).read_text()


def test_never_raises(tmp_path: Path, http_server: Recorder) -> None:
    (tmp_path / "progress").write_text("a file where the directory should be")
    report = deliver(tmp_path, ONE, env(http_server), settings(http_server.url))
    assert report.warnings and not report.ok
    corrupt = tmp_path / "other"
    (corrupt / "progress").mkdir(parents=True)
    (corrupt / OUTBOX).write_text("{not json")
    report = deliver(corrupt, ONE, env(http_server), settings(http_server.url))
    assert report.sent == [ONE[0].key]


def test_no_channel_configured_writes_nothing(tmp_path: Path) -> None:
    report = deliver(tmp_path, ONE, {}, NotifySettings())
    assert report.ok and report.sent == [] and report.pending == 0
    assert not (tmp_path / OUTBOX).exists()
    report = deliver(tmp_path, ONE, {"TELEGRAM_BOT_TOKEN": TOKEN}, NotifySettings())
    assert report.warnings == ["telegram is off: TELEGRAM_CHAT_ID is not set"]
    assert not (tmp_path / OUTBOX).exists()


def test_events_filter_and_adapter(tmp_path: Path, http_server: Recorder) -> None:
    config = {"events": ["phase_done"], "telegram_api": http_server.url, "unknown_key": 1}
    stage = Notification("stage_done:pilot:1:6", "stage 1 done", "stage_done")
    report = deliver(tmp_path, [stage, *ONE], env(http_server, telegram=False), config)
    assert report.sent == [] and http_server.requests == []
    assert NotifySettings.adapt(None) == NotifySettings()
    assert NotifySettings.adapt({"enabled": False}).enabled is False


def test_announce_from_two_states(tmp_path: Path, http_server: Recorder) -> None:
    """The engine's call: events computed from before/after, delivered, not repeated next pass."""
    from reconciler.model.escalation import Escalation
    from reconciler.model.status import StateFile, Status, StatusEntry
    from reconciler.notify import announce

    esc = Escalation("lost for 3 probes", "2026-11-26T10:00:00+00:00", "retry")
    before = StateFile(project="demo").with_entries(
        (
            StatusEntry(id="a_s0", status=Status.RUNNING, phase="pilot"),
            StatusEntry(id="a_s1", status=Status.DONE, phase="pilot"),
        )
    )
    after = before.with_entries(
        (
            StatusEntry(id="a_s0", status=Status.ON_HOLD, phase="pilot", escalation=esc),
            StatusEntry(id="a_s1", status=Status.DONE, phase="pilot"),
        )
    )
    config = {"telegram_api": http_server.url}
    report = announce(tmp_path, before, after, config, env(http_server, telegram=False), "demo")
    assert report.sent == ["escalation:a_s0:2026-11-26T10:00:00+00:00"]
    assert http_server.requests[0][1]["text"].startswith("⚠️ [demo] a_s0 needs a decision: lost for 3 probes.")
    report = announce(tmp_path, after, after, config, env(http_server, telegram=False), "demo")
    assert report.sent == [] and len(http_server.requests) == 1
