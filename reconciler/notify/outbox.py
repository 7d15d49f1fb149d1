"""The persisted outbox ``progress/notifications.json``: what is still to send, and the keys
already sent, so that a failed send is retried by the next pass and nothing is sent twice.

    {"version": 1,
     "pending": [{"key", "event", "text", "done": [channels that have it], "error": last error}],
     "sent": [keys, oldest first, the newest MAX_SENT kept]}

``announce(project_dir, before, after, settings, env, project)`` is the pass's one call: it
computes the events (``reconciler.notify.events``) and hands them to ``deliver(project_dir,
notifications, env, settings)``, which adds the new notifications (a key already sent or
pending is skipped), tries every pending one on every configured channel, and writes the file
back atomically when it changed. A notification is sent when every configured channel has it; a
channel that fails is not tried again in the same call (a server that is down costs one timeout
per pass, not one per message). With no channel configured (no variable set) nothing is queued
and no file is written. ``deliver`` never
raises: every problem is in the ``DeliveryReport``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.atomic import atomic_write_text
from reconciler.model.jsontext import loads_strict
from reconciler.model.status import StateFile
from reconciler.notify.events import Notification, notifications
from reconciler.notify.senders import Sender, SendError, senders_from_env
from reconciler.notify.settings import NotifySettings

OUTBOX = "progress/notifications.json"
MAX_SENT = 2000
log = logging.getLogger("reconciler.notify")


@dataclass
class DeliveryReport:
    sent: list[str] = field(default_factory=list)
    """Keys delivered to every channel by this call."""
    failed: dict[str, str] = field(default_factory=dict)
    """Channel -> the error that stopped it this call (its messages stay pending)."""
    pending: int = 0
    """Notifications left in the outbox."""
    warnings: list[str] = field(default_factory=list)
    changed: bool = False
    """The outbox file was rewritten (the pass commits it)."""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.warnings


@dataclass
class Outbox:
    pending: list[dict[str, Any]] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)

    def knows(self, key: str) -> bool:
        return key in self.sent or any(p["key"] == key for p in self.pending)

    def dumps(self) -> str:
        data = {"version": 1, "pending": self.pending, "sent": self.sent[-MAX_SENT:]}
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def loads(cls, text: str) -> Outbox:
        data = loads_strict(text)  # a committed file: deep nesting or NaN is "corrupt", not a crash
        pending = [
            {
                "key": str(p["key"]),
                "event": str(p.get("event", "")),
                "text": str(p["text"]),
                "done": sorted(str(c) for c in p.get("done") or ()),
                "error": p.get("error"),
            }
            for p in data.get("pending") or ()
        ]
        return cls(pending, [str(k) for k in data.get("sent") or ()])


def read_outbox(project_dir: Path) -> tuple[Outbox, str | None]:
    """The outbox and the text it was read from (``None``: no file); a corrupt file starts empty."""
    path = project_dir / OUTBOX
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Outbox(), None
    try:
        return Outbox.loads(text), text
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("%s is corrupt (%s); starting an empty outbox", OUTBOX, exc)
        return Outbox(), text


def deliver(
    project_dir: Path,
    notifications: Sequence[Notification],
    env: Mapping[str, str],
    settings: object = None,
) -> DeliveryReport:
    """Queue ``notifications`` and send everything pending; never raises."""
    report = DeliveryReport()
    try:
        config = NotifySettings.adapt(settings)
        if not config.enabled:
            return report
        senders, warnings = senders_from_env(config, env)
        report.warnings += warnings
        if not senders:  # notifications are off: nothing is queued, no file is written (events are
            return report  # edge-triggered, so turning a channel on later replays no history)
        outbox, before = read_outbox(project_dir)
        wanted = set(config.events)
        for n in notifications:
            if (n.event and n.event not in wanted) or outbox.knows(n.key):
                continue
            outbox.pending.append({"key": n.key, "event": n.event, "text": n.text, "done": [], "error": None})
        _send_all(outbox, senders, report)
        report.pending = len(outbox.pending)
        text = outbox.dumps()
        if text != before and (before is not None or outbox.pending or outbox.sent):
            atomic_write_text(project_dir / OUTBOX, text)
            report.changed = True
    except Exception as exc:
        log.warning("notifications not delivered: %s", exc)
        report.warnings.append(f"notifications: {type(exc).__name__}: {exc}")
    return report


def announce(
    project_dir: Path,
    before: StateFile,
    after: StateFile,
    settings: object,
    env: Mapping[str, str],
    project: str = "",
) -> DeliveryReport:
    """The engine's call at the end of a pass: the events between ``before`` and ``after``
    (``settings``: the config's ``notifications`` value), queued and delivered; never raises."""
    try:
        config = NotifySettings.adapt(settings)
        found = notifications(before, after, project=project, events=config.events, threshold=config.failure_threshold)
    except Exception as exc:  # a notification must never fail a pass
        log.warning("notifications not computed: %s", exc)
        return DeliveryReport(warnings=[f"notifications: {type(exc).__name__}: {exc}"])
    return deliver(project_dir, found, env, config)


def _send_all(outbox: Outbox, senders: list[Sender], report: DeliveryReport) -> None:
    names = sorted(s.name for s in senders)
    still: list[dict[str, Any]] = []
    for item in outbox.pending:
        for sender in senders:
            if sender.name in item["done"] or sender.name in report.failed:
                continue
            try:
                sender.send(item["text"])
            except SendError as exc:
                report.failed[sender.name] = str(exc)
                item["error"] = f"{sender.name}: {exc}"
                log.warning("notification %s not sent to %s: %s", item["key"], sender.name, exc)
                continue
            item["done"] = sorted({*item["done"], sender.name})
        if all(n in item["done"] for n in names):
            outbox.sent.append(item["key"])
            report.sent.append(item["key"])
        else:
            still.append(item)
    outbox.pending = still
