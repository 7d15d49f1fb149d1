"""The JSON API against a real server on 127.0.0.1 serving a project reconciled for real."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.dashboard import Dashboard
from reconciler.engine import reconcile_once
from reconciler.export.results import read_result_rows
from reconciler.export.tables import derive_tables
from reconciler.load import load_desired
from tests.dashboard.conftest import git, state_of
from tests.dashboard.http import get_json, request

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default


def api(dash: Dashboard, path: str) -> Any:
    return get_json(dash.url + path.lstrip("/"))


def test_summary_counts_the_recorded_runs(dashboard: Dashboard, project: Path) -> None:
    summary = api(dashboard, "/api/summary")
    assert summary["project"] == "example"
    assert summary["counts"] == {"done": 12, "failed": 1}
    assert summary["total"] == 13
    assert summary["open_escalations"] == 1
    assert summary["commit"] == git(project, "rev-parse", "HEAD")
    assert summary["problems"] == []


def test_tables_are_the_export_modules_tables(dashboard: Dashboard, project: Path) -> None:
    """The design table is exactly what ``reconciler.export.tables`` derives (one implementation)."""
    state = state_of(project)
    expected = [t.to_json() for t in derive_tables(load_desired(project), state, read_result_rows(project, state).rows)]
    tables = api(dashboard, "/api/tables")
    assert json.loads(json.dumps(expected)) == tables
    cells = {c["design_id"]: c for c in tables[0]["cells"]}
    assert {k: c["status"] for k, c in cells.items()} == {
        "logreg_blobs": "done", "logreg_moons": "done", "mlp_blobs": "done", "mlp_moons": "done", "broken": "failed",
    }  # fmt: skip
    assert cells["mlp_moons"]["best"] and not cells["logreg_moons"]["best"]
    assert cells["broken"]["mean"] is None


def test_experiments_filters_and_search(dashboard: Dashboard) -> None:
    everything = api(dashboard, "/api/experiments")
    assert len(everything) == 13
    assert [r["id"] for r in api(dashboard, "/api/experiments?status=failed")] == ["broken"]
    assert {r["id"] for r in api(dashboard, "/api/experiments?group=baseline&stage=1")} == {
        f"logreg_{d}_s{s}" for d in ("blobs", "moons") for s in range(3)
    }
    assert len(api(dashboard, "/api/experiments?target=local")) == 13
    assert [r["id"] for r in api(dashboard, "/api/experiments?q=MLP_MOONS_S1")] == ["mlp_moons_s1"]
    assert api(dashboard, "/api/experiments?status=running") == []


def test_experiment_detail_log_and_history(dashboard: Dashboard) -> None:
    detail = api(dashboard, "/api/experiments/broken")
    assert detail["row"]["status"] == "failed"
    attempt = detail["attempts"][0]
    assert attempt["n"] == 1 and attempt["exit_code"] == 3 and "--fail 3" in attempt["command"]
    assert detail["escalation"]["status"] == "open"
    assert [a["action"] for a in detail["actions"]] == ["retry", "fail", "cancel"]

    log = api(dashboard, "/api/experiments/mlp_moons_s0/log?lines=5")
    assert log["ok"] and log["target"] == "local" and len(log["lines"]) <= 5
    assert log["lines"][-1].startswith("done: accuracy=")

    history = api(dashboard, "/api/experiments/mlp_moons_s0/history")
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        ("running", "done"),
        ("pending", "running"),
        (None, "pending"),
    ]

    assert request(dashboard.url + "api/experiments/nope").status == 404
    assert request(dashboard.url + "api/experiments/mlp_moons_s0/log?attempt=9").status == 404


def test_targets_show_the_env_verdict_and_a_recorded_probe(dashboard: Dashboard, project: Path) -> None:
    (target,) = api(dashboard, "/api/targets")
    assert target["name"] == "local" and target["env"]["status"] == "ENV_READY"
    assert target["gpus"] is None  # no probe recorded: no GPU view, said so on the page
    probe = {
        "target": "local", "observed_at": "2026-11-26T12:00:00+00:00", "reachable": True,
        "gpus": [
            {"index": 0, "name": "NVIDIA A100-SXM4-80GB", "memory_total_mb": 81920, "memory_used_mb": 1000,
             "utilization_pct": 50, "processes": [[1, 900.0]]},
            {"index": 1, "name": "NVIDIA RTX A6000", "memory_total_mb": 49140, "memory_used_mb": 0,
             "utilization_pct": 0, "processes": []},
        ],
    }  # fmt: skip
    (project / ".reconciler" / "observed").mkdir(parents=True, exist_ok=True)
    (project / ".reconciler" / "observed" / "local.json").write_text(json.dumps(probe))
    dashboard.cache.invalidate()
    (target,) = api(dashboard, "/api/targets")
    assert [(g["index"], g["blacklisted"], g["processes"]) for g in target["gpus"]] == [(0, False, 1), (1, True, 0)]


def test_static_files_and_unknown_routes(dashboard: Dashboard) -> None:
    page = request(dashboard.url)
    assert page.status == 200 and b"/static/app.js" in page.body
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert request(dashboard.url + "static/app.js").status == 200
    for bad in ("static/../server.py", "static/%2e%2e/server.py", "static/nope.js", "nowhere", "api/nowhere"):
        assert request(dashboard.url + bad).status == 404, bad
    assert b"cdn" not in page.body.lower() and b"http" not in page.body.replace(b"http-equiv", b"")


def test_events_stream_announces_a_new_commit_within_two_seconds(dashboard: Dashboard, project: Path) -> None:
    host, port = "127.0.0.1", dashboard.port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        stream = sock.makefile("rb")
        assert b"200" in stream.readline()
        hello = _next_event(stream)
        assert hello == {"type": "hello", "commit": git(project, "rev-parse", "HEAD")}
        git(project, "commit", "-q", "--allow-empty", "-m", "a commit")
        committed = time.monotonic()
        event = _next_event(stream)
        assert time.monotonic() - committed < 2.0
        assert event == {"type": "commit", "commit": git(project, "rev-parse", "HEAD")}


def _next_event(stream: object) -> dict[str, object]:
    while True:
        line = stream.readline()  # type: ignore[attr-defined]
        assert line, "stream closed"
        if line.startswith(b"data: "):
            return json.loads(line[6:])  # type: ignore[no-any-return]


def test_decision_post_runs_reconcile_resolve_and_the_next_pass_applies_it(dashboard: Dashboard, project: Path) -> None:
    before = git(project, "rev-parse", "HEAD")
    answer = request(
        dashboard.url + "api/decisions",
        method="POST",
        body={"action": "retry", "exp_id": "broken", "note": "flag fixed"},
    )
    assert answer.status == 200, answer.body
    result = answer.json()
    assert result["ok"] and "the next pass applies it" in result["output"]
    assert git(project, "rev-parse", "HEAD^") == before
    assert git(project, "log", "-1", "--format=%s") == "resolve: retry broken"
    assert git(project, "show", "--name-only", "--format=", "HEAD").split() == ["dispatch/decisions.yaml"]
    (decision,) = yaml.safe_load(git(project, "show", "HEAD:dispatch/decisions.yaml"))["decisions"]
    assert (decision["exp"], decision["action"], decision["reason"]) == ("broken", "retry", "flag fixed")

    reconcile_once(project, log=lambda _m: None)
    state = state_of(project)
    assert decision["id"] in state.decisions_applied
    broken = state.get("broken")
    assert broken is not None and broken.attempt == 2 and broken.status.value in ("running", "pending")


def test_decision_requests_are_checked(dashboard: Dashboard, project: Path) -> None:
    url = dashboard.url + "api/decisions"
    head = git(project, "rev-parse", "HEAD")
    assert request(url, method="POST", body={"action": "explode", "exp_id": "broken"}).status == 400
    assert request(url, method="POST", body={"action": "retry", "exp_id": "nope"}).status == 404
    assert request(url, method="POST", body={"action": "approve_stage", "stage": 0}).status == 400
    assert request(url, method="POST", raw=b"action=retry", headers={"Content-Type": "text/plain"}).status == 415
    cross = {"Origin": "http://evil.example", "Content-Type": "application/json"}
    assert request(url, method="POST", raw=b'{"action": "retry", "exp_id": "broken"}', headers=cross).status == 403
    assert git(project, "rev-parse", "HEAD") == head  # nothing refused was committed
