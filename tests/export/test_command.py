"""``reconcile export`` through click's CliRunner on real git repositories, and once on the example
project after real runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.commands.export import export_command
from reconciler.export.results import ALL_RESULTS
from reconciler.export.synthesis import SYNTHESIS
from reconciler.model.status import Status
from reconciler.results import check_result
from tests.export.builders import example_repo, git, populate

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

OUTPUTS = sorted([ALL_RESULTS, SYNTHESIS, "experiments/results/pilot_design.md"])


def invoke(project: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(export_command, ["-C", str(project), *args])
    return result.exit_code, result.output


def test_complete_export_is_committed_once(tmp_path: Path) -> None:
    project = example_repo(tmp_path / "project")
    populate(project)
    code, out = invoke(project)
    assert code == 0, out
    assert "complete: 12 experiments" in out and "pilot synthesis: PROCEED" in out
    subject = git(project, "log", "-1", "--format=%s")
    assert subject == "export: all_results.csv (24 rows), 1 design table, pilot synthesis (PROCEED)"
    assert git(project, "show", "--name-only", "--format=", "HEAD").split() == OUTPUTS
    head = git(project, "rev-parse", "HEAD")
    code, out = invoke(project)  # nothing changed: no second commit
    assert code == 0 and "committed" not in out
    assert git(project, "rev-parse", "HEAD") == head
    assert git(project, "status", "--porcelain", "--", "experiments/results/all_results.csv") == ""


def test_incomplete_export_writes_nothing_unless_partial(tmp_path: Path) -> None:
    project = example_repo(tmp_path / "project")
    populate(
        project, {"mlp_moons_s2": Status.ON_HOLD, "logreg_blobs_s1": Status.FAILED, "mlp_blobs_s0": Status.PENDING}
    )
    head = git(project, "rev-parse", "HEAD")
    code, out = invoke(project)
    assert code == 1
    assert "held       mlp_moons_s2: on_hold (timeout at 3x expected duration)" in out
    assert "failed     logreg_blobs_s1: cuda_oom" in out
    assert "unfinished mlp_blobs_s0: pending" in out
    assert not (project / ALL_RESULTS).exists() and git(project, "rev-parse", "HEAD") == head

    code, out = invoke(project, "--allow-partial")
    assert code == 0, out
    assert git(project, "log", "-1", "--format=%s").endswith("[partial]")
    assert "provisional" in (project / SYNTHESIS).read_text()
    assert "(2/3 seeds, on hold)" in (project / "experiments/results/pilot_design.md").read_text()


def test_json_and_no_commit(tmp_path: Path) -> None:
    project = example_repo(tmp_path / "project")
    populate(project, {"mlp_moons_s1": Status.FAILED})
    head = git(project, "rev-parse", "HEAD")
    code, out = invoke(project, "--json", "--allow-partial", "--no-commit")
    assert code == 0
    data = json.loads(out)
    assert data["complete"] is False and data["commit"] is None and data["written"] == OUTPUTS
    assert data["guard"]["failed"] == [{"exp_id": "mlp_moons_s1", "reason": "cuda_oom"}]
    cell = next(c for c in data["tables"][0]["cells"] if c["design_id"] == "mlp_moons")
    assert (cell["status"], cell["n"], cell["seeds_total"]) == ("partial", 2, 3)
    assert git(project, "rev-parse", "HEAD") == head and (project / ALL_RESULTS).exists()


def test_invalid_desired_state_exits_2(tmp_path: Path) -> None:
    project = example_repo(tmp_path / "project")
    populate(project)
    config = project / "config/reconciler.yaml"
    config.write_text(config.read_text().replace("max_runs: 4", "max_runs: many"))
    git(project, "commit", "-qam", "break the config")
    code, out = invoke(project)
    assert code == 2
    assert "config/reconciler.yaml:" in out and "max_runs" in out


@pytest.mark.timeout(300)
def test_example_project_end_to_end(tmp_path: Path) -> None:
    """Run the example for real (12 training runs), then export its results."""
    project = example_repo(tmp_path / "project")
    # the example's commands run ``python3``; this venv's has ``reconciler.runtime`` for train.py
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "--until-done", "-C", str(project)],
        cwd=project, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    code, out = invoke(project)
    assert code == 0, out
    csv_text = (project / ALL_RESULTS).read_text()
    assert len(csv_text.splitlines()) == 1 + 12 * 2  # 12 runs x (accuracy, loss)
    for exp_id in {line.split(",")[0] for line in csv_text.splitlines()[1:]}:
        rows = [csv_text.splitlines()[0], *(x for x in csv_text.splitlines()[1:] if x.startswith(exp_id + ","))]
        assert check_result("\n".join(rows) + "\n", exp_id).ok
    table = [
        x for x in (project / "experiments/results/pilot_design.md").read_text().splitlines() if x.startswith("| ")
    ]
    body = "\n".join(table[1:])
    assert body.count(" ± ") == 4 and body.count("**") == 4  # mean ± std everywhere, one bold per column
    synthesis = (project / SYNTHESIS).read_text()
    assert "## Recommendation: **" in synthesis and "| mlp_moons (core) |" in synthesis
    assert git(project, "log", "-1", "--format=%s").startswith("export: all_results.csv (24 rows)")
