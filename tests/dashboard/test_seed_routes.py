"""The seed dashboard's routes on ``reconcile dashboard`` (issue 17): a real server over a project
reconciled for real, answering with the shapes of ``seed-dashboard-api.md`` section 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.dashboard import Dashboard
from tests.dashboard.conftest import git, state_of
from tests.dashboard.http import get_json, request

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

RUN_KEYS = {
    "exp_id", "status", "host", "gpu", "pid", "config", "metrics", "wandb_url", "hf_artifact_url",
    "description", "started", "finished", "latest_step",
}  # fmt: skip


def api(dash: Dashboard, path: str) -> Any:
    return get_json(dash.url + path.lstrip("/"))


def test_projects_and_dispatch(dashboard: Dashboard, project: Path) -> None:
    (listed,) = api(dashboard, "/api/projects")
    assert listed["name"] == "example" and listed["types"] == ["dispatch"] and listed["mtime"] > 0
    (state,) = api(dashboard, "/api/dispatch")
    assert state["project"] == "example"
    assert len(state["experiments"]) == len(state_of(project).entries) == 13


def test_exp_table_cells_have_the_seeds_fields_over_done_seeds(dashboard: Dashboard, project: Path) -> None:
    table = api(dashboard, "/api/exp-table/example/pilot")
    assert table["found"] is True and table["type"] == "pilot"
    assert [c["id"] for c in table["cols"]] == ["blobs", "moons"]
    cells = {(c["row"], c["col"]): c for c in table["cells"]}
    ours = {(c["row"], c["col"]): c for c in api(dashboard, "/api/tables")[0]["cells"]}
    logreg = cells[("logreg", "blobs")]
    assert logreg["exp_id"] == "logreg_blobs" and logreg["status"] == "done" and logreg["seed_count"] == 3
    assert logreg["results"] == {  # the same numbers as our own table, as the seed's page reads them
        "accuracy": round(ours[("logreg", "blobs")]["mean"], 4),
        "accuracy_std": round(ours[("logreg", "blobs")]["std"], 4),
    }
    assert logreg["host"] == "local" and logreg["wandb_url"].startswith("https://wandb.ai/lab/example/runs/")
    assert cells[("broken", "moons")]["status"] == "failed" and "results" not in cells[("broken", "moons")]
    full = api(dashboard, "/api/exp-table/example/full")
    assert full["found"] is False and full["cells"] == []
    assert api(dashboard, "/api/exp-table/another-project/pilot")["found"] is False
    assert request(dashboard.url + "api/exp-table/example/final").status == 400


def test_research_runs_have_the_thirteen_keys(dashboard: Dashboard, project: Path) -> None:
    research = api(dashboard, "/api/research/example")
    assert research["summary"] == {"running": 0, "done": 12, "pending": 0, "offline_queue": 0}
    runs = research["runs"]
    assert all(set(r) == RUN_KEYS for r in runs)
    assert [r["status"] for r in runs][:12] == ["done"] * 12  # done first (newest first), then the rest
    by_id = {r["exp_id"]: r for r in runs}
    entry = next(e for e in state_of(project).entries if e.id == "mlp_moons_s0")
    assert by_id["mlp_moons_s0"]["metrics"] == dict(entry.results) != {}
    assert by_id["mlp_moons_s0"]["latest_step"]["step"] == 10
    assert request(dashboard.url + "api/research/another-project").status == 404


def test_steps_and_logfile(dashboard: Dashboard, project: Path) -> None:
    steps = api(dashboard, "/api/steps/example/mlp_moons_s0")["steps"]
    assert [s["step"] for s in steps] == list(range(1, 11)) and "loss" in steps[0]
    assert api(dashboard, "/api/steps/example/nope") == {"steps": []}
    notes = api(dashboard, "/api/logfile/example/mlp_moons_s0")
    committed = git(project, "show", "HEAD:experiments/logs/mlp_moons_s0.md")
    assert notes["found"] is True and notes["content"].strip() == committed.strip()
    assert "## Motivation" in notes["content"]
    climbing = request(dashboard.url + "api/logfile/example/..%2F..%2Fetc%2Fpasswd")  # decoded, then split
    assert climbing.status == 404 and b"root:" not in climbing.body
    assert api(dashboard, "/api/logfile/example/..") == {"found": False, "content": ""}
    assert api(dashboard, "/api/logfile/example/nope") == {"found": False, "content": ""}
