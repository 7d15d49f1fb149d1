"""Design tables derived from a real desired state, a status file and result rows."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from reconciler.export.results import read_result_rows
from reconciler.export.tables import cell_status, derive_tables
from reconciler.load import load_desired
from reconciler.model.design import DesignCol
from reconciler.model.status import StateFile, Status
from tests.export.builders import VALUES, example_repo, populate


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return example_repo(tmp_path / "project")


def test_mean_std_and_best_per_column(project: Path) -> None:
    state = populate(project)
    desired = load_desired(project)
    (view,) = derive_tables(desired, state, read_result_rows(project, state).rows)
    assert view.name == "pilot_design" and view.metrics == ("accuracy",)
    cell = view.cell("mlp", "moons")
    assert cell is not None
    assert cell.status == "done" and cell.n == 3 and cell.seeds_done == cell.seeds_total == 3
    assert cell.mean == pytest.approx(0.96) and cell.std == pytest.approx(0.01)
    assert cell.exp_ids == ("mlp_moons_s0", "mlp_moons_s1", "mlp_moons_s2")
    best = {key: c.best for key, c in view.cells.items()}
    assert best == {
        ("logreg", "blobs"): False,
        ("logreg", "moons"): False,
        ("mlp", "blobs"): True,
        ("mlp", "moons"): True,
    }
    json.dumps(view.to_json())  # plain JSON


def test_best_is_direction_aware(project: Path) -> None:
    state = populate(project)
    desired = load_desired(project)
    (table,) = desired.designs
    lower = dataclasses.replace(table, cols=tuple(DesignCol(c.id, c.label, "loss", "lower") for c in table.cols))
    desired = dataclasses.replace(desired, designs=(lower,))
    (view,) = derive_tables(desired, state, read_result_rows(project, state).rows)
    assert view.cell("logreg", "moons").mean == pytest.approx(0.15)  # type: ignore[union-attr]
    assert [k for k, c in view.cells.items() if c.best] == [("mlp", "blobs"), ("mlp", "moons")]
    # the lowest loss wins: swap the values so the baseline is best on blobs
    swapped = {"logreg_blobs": (0.99, 0.99, 0.99)}
    state = populate(project, values={**VALUES, **swapped})
    (view,) = derive_tables(desired, state, read_result_rows(project, state).rows)
    assert view.cell("logreg", "blobs").best and not view.cell("mlp", "blobs").best  # type: ignore[union-attr]


def test_partial_cells_count_done_seeds_only(project: Path) -> None:
    state = populate(project, {"mlp_moons_s2": Status.RUNNING, "mlp_blobs_s1": Status.FAILED})
    # a stale file of the running seed must not count
    (project / "experiments/results/mlp_moons_s2.csv").write_text(
        (project / "experiments/results/mlp_moons_s0.csv").read_text().replace("_s0", "_s2")
    )
    desired = load_desired(project)
    (view,) = derive_tables(desired, state, read_result_rows(project, state).rows)
    moons = view.cell("mlp", "moons")
    blobs = view.cell("mlp", "blobs")
    assert moons is not None and blobs is not None
    assert (moons.status, moons.n, moons.seeds_done, moons.seeds_total) == ("running", 2, 2, 3)
    assert moons.mean == pytest.approx(0.955)
    assert (blobs.status, blobs.n) == ("partial", 2)
    assert dict(blobs.counts) == {"done": 2, "failed": 1}


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ((), "missing"),
        ((Status.DONE, Status.DONE), "done"),
        ((Status.CANCELLED,), "cancelled"),
        ((Status.DONE, Status.ON_HOLD, Status.RUNNING), "on_hold"),
        ((Status.DONE, Status.UNREACHABLE), "unreachable"),
        ((Status.DONE, Status.RUNNING, Status.PENDING), "running"),
        ((Status.QUEUED, Status.PENDING), "queued"),
        ((Status.PENDING, Status.DONE), "pending"),
        ((Status.FAILED, Status.CANCELLED), "failed"),
        ((Status.FAILED, Status.DONE), "partial"),
        ((Status.CANCELLED, Status.DONE), "partial"),
    ],
)
def test_cell_status(statuses: tuple[Status, ...], expected: str) -> None:
    assert cell_status(statuses) == expected


def test_unrecorded_seeds_are_pending(project: Path) -> None:
    desired = load_desired(project)
    (view,) = derive_tables(desired, StateFile(project="example"), {})
    assert {c.status for c in view.cells.values()} == {"pending"}
    assert all(c.seeds_total == 3 and c.mean is None and not c.best for c in view.cells.values())
