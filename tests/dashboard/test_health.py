"""``/api/health``: the last pass's metrics (``.reconciler/metrics.json``) on a real server over a
project reconciled for real, read afresh on each request (a pass that commits nothing changes them)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.dashboard import Dashboard
from reconciler.engine import reconcile_once
from reconciler.model.metrics import STAGES
from tests.dashboard.conftest import CONFIG, git
from tests.dashboard.http import get_json

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default


def api(dash: Dashboard, path: str) -> Any:
    return get_json(dash.url + path.lstrip("/"))


def test_health_is_the_metrics_file_with_stale(dashboard: Dashboard, project: Path) -> None:
    health = api(dashboard, "/api/health")
    last = health["last"]
    assert last["project"] == "example"
    assert set(last["stages"]) == set(STAGES)  # (the API sorts keys)
    (probe,) = last["probes"]
    assert probe["target"] == "local" and probe["reachable"] and probe["received_bytes"] > 0
    assert health["totals"]["passes"] >= 2 and len(health["history"]) == health["totals"]["passes"]
    assert isinstance(health["stale"], bool)
    assert health["stale_after_seconds"] == 3.0  # 3 x the committed poll_interval (1 s)
    assert health["stale"] == (health["age_seconds"] > 3.0)


def test_health_follows_passes_without_a_commit_and_says_when_missing(dashboard: Dashboard, project: Path) -> None:
    metrics = project / ".reconciler" / "metrics.json"
    metrics.unlink()
    missing = api(dashboard, "/api/health")
    assert missing["last"] is None and missing["stale"] is True and "metrics.json" in missing["error"]

    # A slower poll in the committed config: the dashboard judges staleness by it.
    (project / "config" / "reconciler.yaml").write_text(CONFIG.replace("poll_interval: 1", "poll_interval: 600"))
    git(project, "commit", "-qam", "poll every 10 minutes")
    head = git(project, "rev-parse", "HEAD")
    reconcile_once(project, log=lambda _m: None)
    assert git(project, "rev-parse", "HEAD") == head  # the pass committed nothing
    deadline = time.monotonic() + 10
    while api(dashboard, "/api/summary")["commit"] != head:
        assert time.monotonic() < deadline, "the dashboard did not see the new commit"
        time.sleep(0.1)
    fresh = api(dashboard, "/api/health")
    assert fresh["stale"] is False and fresh["stale_after_seconds"] == 1800
    assert fresh["totals"] == {"passes": 1, "commits": 0}  # the file was deleted: counted afresh
    assert fresh["last"]["committed"] is False and fresh["last"]["poll_interval"] == 600

    reconcile_once(project, log=lambda _m: None)
    again = api(dashboard, "/api/health")
    assert again["totals"]["passes"] == 2 and [h["at"] for h in again["history"]][-1] == again["last"]["at"]
