"""Experiment notes: written at the first launch, completed when the run ends, a person's
observations kept."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from reconciler.export.notes import notes_for
from reconciler.export.results import read_result_rows
from reconciler.export.writer import write_notes
from reconciler.load import load_desired
from reconciler.model.status import StateFile, Status
from tests.export.builders import example_repo, populate


def test_launch_then_result(tmp_path: Path) -> None:
    project = example_repo(tmp_path / "project")
    desired = load_desired(project)
    done = populate(project)  # every run done, with results
    rows = read_result_rows(project, done).rows
    empty = StateFile(project="example")
    launched = done.with_entries(
        tuple(
            dataclasses.replace(e, status=Status.RUNNING, finished=None) if e.id == "mlp_moons_s0" else e
            for e in done.entries
        )
    )

    first = notes_for(desired, empty, launched, rows)
    assert len(first) == 12  # every run launched (the others also ended) in this pass
    text = first["experiments/logs/mlp_moons_s0.md"]
    assert "## Motivation" in text
    assert "One hidden tanh layer of 8 units; expected to beat the baseline on moons." in text
    assert "- core claim" in text and "- Measured by accuracy (higher is better)" in text
    assert "- To beat: Logistic regression at 0.8500 (mean over 3 seeds)" in text
    assert "## Expected Outcome" in text and "## Actual Result" not in text
    assert notes_for(desired, launched, launched, rows) == {}  # nothing changed: nothing to rewrite

    final = notes_for(desired, launched, done, rows)
    assert list(final) == ["experiments/logs/mlp_moons_s0.md"]
    text = final["experiments/logs/mlp_moons_s0.md"]
    assert "## Actual Result" in text and "Completed at 2026-11-26T10:00:00+00:00." in text
    assert "| accuracy | 0.9500 | +0.1000 vs Logistic regression (0.8500) |" in text
    assert "| 1 | local | host1 |" in text and "`python3 train.py --exp mlp_moons_s0`" in text
    assert notes_for(desired, done, done, rows) == {}


def test_failed_run_note_and_observations_kept(tmp_path: Path) -> None:
    project = example_repo(tmp_path / "project")
    desired = load_desired(project)
    state = populate(project, {"logreg_blobs_s1": Status.FAILED})
    before = state.with_entries(tuple(dataclasses.replace(e, status=Status.RUNNING) for e in state.entries))
    notes = notes_for(desired, before, state, read_result_rows(project, state).rows)
    path = "experiments/logs/logreg_blobs_s1.md"
    assert "Failed at 2026-11-26T10:00:00+00:00: cuda_oom." in notes[path]
    assert "| 1 | local | host1 | 2026-11-26T09:00:00+00:00 | 2026-11-26T10:00:00+00:00 | 1 | cuda_oom |" in notes[path]

    write_notes(project, {path: notes[path]})
    target = project / path
    target.write_text(
        target.read_text().split("## Observations & Notes")[0] + "## Observations & Notes\n\nLR too high.\n"
    )
    write_notes(project, {path: notes[path].replace("Failed at", "FAILED AT")})
    after = target.read_text()
    assert "FAILED AT" in after and after.endswith("## Observations & Notes\n\nLR too high.\n")


def test_pass_notes_writes_only_due_notes(tmp_path: Path) -> None:
    from reconciler.export.writer import pass_notes

    project = example_repo(tmp_path / "project")
    desired = load_desired(project)
    done = populate(project)
    before = done.with_entries(
        tuple(dataclasses.replace(e, status=Status.RUNNING) if e.id.startswith("mlp_") else e for e in done.entries)
    )
    assert pass_notes(project, desired, done, done) == []
    written = pass_notes(project, desired, before, done)
    assert written == [f"experiments/logs/mlp_{d}_s{s}.md" for d in ("blobs", "moons") for s in range(3)]
    assert sorted(p.name for p in (project / "experiments/logs").iterdir()) == sorted(Path(w).name for w in written)


def test_a_note_finds_its_definition_as_a_scan_would() -> None:
    """Exact ids first (the one listed first when both the experiment id and the entry id name
    one), else the longest ``<id>_`` prefix of the entry's id; the first of a repeated id."""
    from reconciler.export.notes import Lookup
    from reconciler.model.config import Config
    from reconciler.model.design import Definition
    from reconciler.model.desired import DesiredState
    from reconciler.model.status import StatusEntry

    def d(def_id: str, name: str = "") -> Definition:
        return Definition(id=def_id, name=name or def_id, phase="p", group="main")

    definitions = (d("mlp"), d("mlp_moons"), d("mlp_moons_wide"), d("x_s0"), d("sweep"), d("mlp", "again"))
    found = Lookup(DesiredState(config=Config(project="p", targets=()), experiments=(), definitions=definitions), [])

    def name(exp_id: str, experiment_id: str | None = None) -> str | None:
        hit = found.definition(StatusEntry(id=exp_id, experiment_id=experiment_id))
        return None if hit is None else hit.id + ("" if hit.name == hit.id else f" ({hit.name})")

    assert name("mlp_moons_wide_s0") == "mlp_moons_wide"  # the longest prefix
    assert name("mlp_moons_s3") == "mlp_moons"
    assert name("mlp_blobs_s0") == "mlp"  # the first of a repeated id
    assert name("mlp_moons_s0", experiment_id="sweep") == "sweep"  # an exact id beats a prefix
    assert name("x_s0", experiment_id="mlp_moons") == "mlp_moons"  # both exact: the one listed first
    assert name("mlpx_s0") is None and name("other") is None
