"""Notifications: what a pass announces and how it gets there.

``events`` (pure): ``notifications(before, after, ...)`` -> ``Notification(key, text, event)``
for escalations opened, stages and phases done, and a failure rate above the threshold.
``outbox``: ``announce(...)`` (the engine's call) computes them and ``deliver(project_dir,
notifications, env, settings)`` queues them in
``progress/notifications.json``, sends what is pending and never raises. ``senders``: the
Telegram Bot API and a Slack-compatible JSON webhook (stdlib ``urllib``). ``settings``: the
config adapter (environment variable names, events, threshold).
"""

from __future__ import annotations

from reconciler.notify.events import EVENTS, Notification, notifications
from reconciler.notify.outbox import OUTBOX, DeliveryReport, announce, deliver
from reconciler.notify.settings import NotifySettings

__all__ = [
    "EVENTS",
    "OUTBOX",
    "DeliveryReport",
    "Notification",
    "NotifySettings",
    "announce",
    "deliver",
    "notifications",
]
