"""The pilot decision and its criteria, on views derived from real projects."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.export.guard import completeness
from reconciler.export.results import read_result_rows
from reconciler.export.synthesis import ITERATE, PROCEED, ROLLBACK, UNDECIDED, Criteria, synthesize
from reconciler.export.tables import TableView, derive_tables
from reconciler.load import load_desired
from reconciler.model.status import Status
from tests.export.builders import VALUES, example_repo, populate


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return example_repo(tmp_path / "project")


def views(
    project: Path, values: dict[str, tuple[float, ...]], statuses: dict[str, Status] | None = None
) -> list[TableView]:
    state = populate(project, statuses, values)
    return derive_tables(load_desired(project), state, read_result_rows(project, state).rows)


def test_core_claim_and_parity_pass(project: Path) -> None:
    result = synthesize(views(project, VALUES))
    assert result.recommendation == PROCEED
    by_id = {c.cell.design_id: c for c in result.comparisons}
    assert by_id["mlp_moons"].core and by_id["mlp_moons"].passed
    assert by_id["mlp_moons"].delta == pytest.approx(0.11)
    assert [c.name for c in by_id["mlp_blobs"].checks] == ["parity"]


def test_core_within_noise_rolls_back(project: Path) -> None:
    noisy = {**VALUES, "mlp_moons": (0.80, 0.87, 0.94)}  # mean 0.87 > 0.85, but std 0.07
    result = synthesize(views(project, noisy))
    assert result.recommendation == ROLLBACK
    core = next(c for c in result.comparisons if c.core)
    assert core.cause == "within_noise"
    assert any("core comparison mlp_moons fails: within_noise" in e for e in result.evidence)


def test_one_cause_iterates(project: Path) -> None:
    # mlp worse than the baseline on blobs beyond the parity tolerance; core passes
    values = {**VALUES, "mlp_blobs": (0.70, 0.71, 0.72)}
    result = synthesize(views(project, values))
    assert result.recommendation == ITERATE
    assert "every failure has one cause: parity" in result.evidence


def test_min_improvement_is_configurable(project: Path) -> None:
    result = synthesize(views(project, VALUES), Criteria(min_improvement=0.2))
    assert result.recommendation == ROLLBACK


def test_no_core_result_gives_no_decision(project: Path) -> None:
    statuses = {f"mlp_moons_s{i}": Status.RUNNING for i in range(3)}
    result = synthesize(views(project, VALUES, statuses))
    assert result.recommendation == UNDECIDED


def test_guard_lists_held_failed_missing_unfinished(project: Path) -> None:
    statuses = {
        "mlp_moons_s0": Status.ON_HOLD,
        "mlp_moons_s1": Status.FAILED,
        "mlp_moons_s2": Status.RUNNING,
    }
    state = populate(project, statuses)
    (project / "experiments/results/logreg_moons_s1.csv").unlink()
    bad = project / "experiments/results/logreg_moons_s2.csv"
    bad.write_text("\n".join(line for line in bad.read_text().splitlines() if ",loss," not in line) + "\n")
    files = read_result_rows(project, state)
    guard = completeness(load_desired(project), state, files.rows, files.problems)
    assert not guard.complete and guard.expected == 12
    assert [(o.kind, o.exp_id) for o in guard.offenders] == [
        ("held", "mlp_moons_s0"),
        ("failed", "mlp_moons_s1"),
        ("unfinished", "mlp_moons_s2"),
        ("missing", "logreg_moons_s1"),
        ("missing", "logreg_moons_s2"),
    ]
    reasons = {o.exp_id: o.reason for o in guard.offenders}
    assert reasons["logreg_moons_s1"] == "experiments/results/logreg_moons_s1.csv: missing"
    assert reasons["logreg_moons_s2"] == "no rows for metric loss"
    assert "timeout" in reasons["mlp_moons_s0"] and reasons["mlp_moons_s1"] == "cuda_oom"
    assert guard.summary() == "incomplete: 1 held, 1 failed, 1 unfinished, 2 missing of 12 experiments"
