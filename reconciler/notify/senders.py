"""Where notifications go: the Telegram Bot API and a generic JSON webhook (Slack-compatible).

Both POST JSON with the standard library (``urllib``) and a short timeout. ``send`` raises
``SendError`` for every failure (connection refused, timeout, HTTP error, a Telegram answer with
``ok: false``); foreign exceptions stop here. Secrets (the bot token, which sits in the Bot API's
URL, and the webhook URL) are removed from every error message.

``senders_from_env(settings, env)`` builds the configured senders from environment variables whose
*names* come from the settings; a channel whose variables are unset is off.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any, Protocol

from reconciler.notify.settings import NotifySettings

TELEGRAM_LIMIT = 4096


class SendError(Exception):
    """A notification could not be delivered; it stays in the outbox for the next pass."""


class Sender(Protocol):
    name: str

    def send(self, text: str) -> None: ...


def redact(message: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message


def post_json(url: str, payload: Mapping[str, Any], timeout: float, secrets: tuple[str, ...]) -> tuple[int, bytes]:
    """POST ``payload``; the status and body of a 2xx answer, else ``SendError``."""
    data = json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json", "User-Agent": "reconciler"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()[:200].decode("utf-8", "replace")
        raise SendError(redact(f"HTTP {exc.code}: {body}", secrets)) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise SendError(redact(f"{type(exc).__name__}: {exc}", secrets)) from None


class TelegramSender:
    name = "telegram"

    def __init__(self, token: str, chat_id: str, base_url: str = "https://api.telegram.org", timeout: float = 5.0):
        self.token = token
        self.chat_id = chat_id
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def send(self, text: str) -> None:
        url = f"{self.base_url}/bot{self.token}/sendMessage"
        payload = {"chat_id": self.chat_id, "text": text[:TELEGRAM_LIMIT], "disable_web_page_preview": True}
        _, body = post_json(url, payload, self.timeout, (self.token,))
        try:
            answer = json.loads(body or b"{}")
        except ValueError:
            raise SendError("telegram: the answer is not JSON") from None
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            description = answer.get("description", "") if isinstance(answer, dict) else ""
            raise SendError(redact(f"telegram: not ok: {description}", (self.token,)))


class WebhookSender:
    name = "webhook"

    def __init__(self, url: str, timeout: float = 5.0):
        self.url = url
        self.timeout = timeout

    def send(self, text: str) -> None:
        post_json(self.url, {"text": text}, self.timeout, (self.url,))


def senders_from_env(settings: NotifySettings, env: Mapping[str, str]) -> tuple[list[Sender], list[str]]:
    """The senders whose variables are set, and a warning per half-configured channel."""
    senders: list[Sender] = []
    warnings: list[str] = []
    token = env.get(settings.telegram_token_env or "", "") if settings.telegram_token_env else ""
    chat = env.get(settings.telegram_chat_env or "", "") if settings.telegram_chat_env else ""
    if token and chat:
        senders.append(TelegramSender(token, chat, settings.telegram_api, settings.timeout_seconds))
    elif token or chat:
        missing = settings.telegram_chat_env if token else settings.telegram_token_env
        warnings.append(f"telegram is off: {missing} is not set")
    url = env.get(settings.webhook_env or "", "") if settings.webhook_env else ""
    if url:
        if url.startswith(("http://", "https://")):
            senders.append(WebhookSender(url, settings.timeout_seconds))
        else:
            warnings.append(f"webhook is off: {settings.webhook_env} is not an http(s) URL")
    return senders, warnings
