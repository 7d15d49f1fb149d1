"""``GET /api/experiments?offset=&limit=`` and the light first paint, on a real server (issue 20)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from reconciler.dashboard import Dashboard
from reconciler.dashboard.source import result_files
from tests.dashboard.http import get_json, request

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default


def api(dash: Dashboard, path: str) -> Any:
    return get_json(dash.url + path.lstrip("/"))


def test_pages_of_the_experiments(dashboard: Dashboard) -> None:
    everything = api(dashboard, "/api/experiments")  # the unpaged form: a list, as before
    assert isinstance(everything, list) and len(everything) == 13
    first = api(dashboard, "/api/experiments?offset=0&limit=5")
    assert {k: first[k] for k in ("total", "offset", "limit", "sort")} == {
        "total": 13,
        "offset": 0,
        "limit": 5,
        "sort": "id",
    }
    assert first["commit"] == dashboard.watcher.current
    assert first["items"] == everything[:5]
    last = api(dashboard, "/api/experiments?offset=10&limit=5")
    assert last["items"] == everything[10:] and last["total"] == 13
    assert api(dashboard, "/api/experiments?limit=5")["offset"] == 0
    failed = api(dashboard, "/api/experiments?offset=0&limit=50&status=failed")
    assert failed["total"] == 1 and [r["id"] for r in failed["items"]] == ["broken"]
    moons = api(dashboard, "/api/experiments?limit=50&q=MOONS_S2&sort=-id")
    assert [r["id"] for r in moons["items"]] == ["mlp_moons_s2", "logreg_moons_s2"]
    stage2 = api(dashboard, "/api/experiments?limit=50&stage=2&group=main&target=local&phase=pilot")
    assert stage2["total"] == 6 and {r["method"] for r in stage2["items"]} == {"mlp"}
    by_status = api(dashboard, "/api/experiments?limit=50&sort=-status")
    assert by_status["items"][0]["id"] == "broken"  # failed after done in the status order


@pytest.mark.parametrize(
    "query",
    ["limit=-1", "limit=many", "offset=1e3", "sort=colour", "sort=id&sort=status", "colour=red", "limit=1&limit=2"],
)
def test_bad_parameters_are_a_400_with_a_json_error(dashboard: Dashboard, query: str) -> None:
    answer = request(f"{dashboard.url}api/experiments?{query}")
    assert answer.status == 400, answer.body
    assert answer.headers["Content-Type"].startswith("application/json")
    doc = answer.json()
    assert doc["status"] == 400 and doc["error"]


def test_the_summary_carries_the_filters_values(dashboard: Dashboard) -> None:
    facets = api(dashboard, "/api/summary")["facets"]
    assert facets["status"] == [["done", 12], ["failed", 1]]
    assert facets["group"] == [["ablation", 1], ["baseline", 6], ["main", 6]]
    assert facets["stage"] == [["1", 6], ["2", 7]] and facets["target"] == [["local", 13]]


def test_snapshot_stays_for_older_clients(dashboard: Dashboard) -> None:
    snap = api(dashboard, "/api/snapshot")
    assert snap["experiments"] == api(dashboard, "/api/experiments")
    assert snap["summary"] == {k: v for k, v in api(dashboard, "/api/summary").items() if k != "facets"}


def test_a_result_file_no_table_read_is_read_when_its_page_asks(dashboard: Dashboard) -> None:
    snap = dashboard.snapshot()
    assert "mlp_moons_s0" in snap.results  # in the design table: read with the snapshot
    bare = dataclasses.replace(snap, results={}, result_problems={})
    assert result_files(bare, "mlp_moons_s0").rows == {"mlp_moons_s0": snap.results["mlp_moons_s0"]}
    assert result_files(bare, "broken").rows == {}  # failed: no result to read
    detail = api(dashboard, "/api/experiments/mlp_moons_s0")
    assert set(detail["result"]) == {"accuracy", "loss"} and detail["result_problem"] is None
    assert request(f"{dashboard.url}api/experiments/nosuch").status == 404


def test_the_benchmark_runs_at_a_small_n(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.dashboard import main

    assert main(["--n", "300", "--runs", "1", "--no-browser", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)["figures"]
    assert figures["first paint bytes"] < figures["/api/snapshot bytes"]
    assert figures["next page bytes"] > 0 and figures["warm first paint (s)"] < 2.0
