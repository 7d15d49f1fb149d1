"""Pytest fixtures over the loopback fakes. Expose them from ``tests/conftest.py`` with
``from tests.fakes.fixtures import fake_hub  # noqa: F401``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.fakehub import FakeHub


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A started fake Hub; ``HF_ENDPOINT`` points at it (for subprocesses and code that reads it),
    telemetry is off and no token or offline switch leaks in from the environment."""
    hub = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    try:
        yield hub
    finally:
        hub.stop()
