"""The notification settings, read through a small adapter so that this package needs nothing
from ``reconciler.model.config`` beyond plain values.

``NotifySettings.adapt(x)`` takes the config's ``notifications`` value (a dataclass, any object with
these attribute names, a mapping, or ``None``) and keeps the fields it knows; a missing field
keeps its default. Only environment variable *names* are configured; the token, chat id and URL
themselves are read from the environment at delivery time and never stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from reconciler.notify.events import EVENTS


@dataclass(frozen=True)
class NotifySettings:
    enabled: bool = True
    telegram_token_env: str | None = "TELEGRAM_BOT_TOKEN"
    telegram_chat_env: str | None = "TELEGRAM_CHAT_ID"
    webhook_env: str | None = "RECONCILER_WEBHOOK_URL"
    """Name of the variable holding a Slack-compatible webhook URL (``{"text": ...}`` is posted)."""
    events: tuple[str, ...] = EVENTS
    failure_threshold: float = 0.5
    timeout_seconds: float = 5.0
    telegram_api: str = "https://api.telegram.org"
    """Base URL of the Bot API (a loopback server in tests)."""

    @classmethod
    def adapt(cls, value: object) -> NotifySettings:
        if value is None:
            return cls()
        if isinstance(value, NotifySettings):
            return value
        known = {f.name for f in fields(cls)}
        if isinstance(value, Mapping):
            raw: dict[str, Any] = {k: v for k, v in value.items() if k in known}
        else:
            raw = {k: getattr(value, k) for k in known if hasattr(value, k)}
        if "events" in raw:
            raw["events"] = tuple(str(e) for e in raw["events"] or ())
        return cls(**raw)
