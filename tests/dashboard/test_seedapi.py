"""``dashboard.seedapi`` builders on a snapshot built by hand (pure; the routes themselves are
tested on a real server in ``test_seed_routes.py``)."""

from __future__ import annotations

from pathlib import Path

from reconciler.dashboard.seedapi import gpus
from reconciler.dashboard.source import Snapshot
from reconciler.model.status import Attempt, StateFile, Status, StatusEntry

CARD = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_total_mb": 81559, "memory_used_mb": 30000,
        "utilization_pct": 97}  # fmt: skip


def snapshot(probes: dict[str, dict[str, object]], entries: tuple[StatusEntry, ...] = ()) -> Snapshot:
    return Snapshot(Path("."), "c0ffee", "2026-12-05T00:00:00+00:00", None, (), StateFile("p", entries), probes=probes)


def test_gpus_in_the_seeds_units_with_our_runs_marked() -> None:
    running = StatusEntry(
        id="a", status=Status.RUNNING, target="lab1", attempt=1,
        attempts=(Attempt(n=1, target="lab1", command="x", run_dir="r", token="t", gpus=(0,)),),
    )  # fmt: skip
    probes: dict[str, dict[str, object]] = {
        "lab1": {"reachable": True, "observed_at": "2026-12-05T00:00:00+00:00", "gpus": [CARD, {**CARD, "index": 1}]},
        "cpu": {"reachable": True, "gpus": None},
    }
    (lab1,) = gpus(snapshot(probes, (running,)))
    assert lab1["host"] == "lab1" and lab1["reachable"] is True
    assert lab1["gpus"][0] == {
        "index": 0, "name": "NVIDIA H100 80GB HBM3", "utilization": 97, "memory_used": 30000,
        "memory_total": 81559, "temperature": None, "available": False,
    }  # fmt: skip
    assert lab1["gpus"][1]["available"] is True


def test_no_probe_gives_the_seeds_error_shape() -> None:
    (only,) = gpus(snapshot({}))
    assert set(only) == {"error"} and "not found" in only["error"]
