"""Every run of the example project's dispatch file, executed directly as the reconciler would."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import socket
import statistics
import subprocess
from pathlib import Path

import jsonschema
import pytest

from reconciler.runtime.bundle import write_bundle
from tests.example.tools import EXAMPLE, REPO, RESULT_COLUMNS, copy_example, expand_runs

FINISHED_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """Run all 12 commands of dispatch/experiments.yaml (in parallel), in a copy of the project."""
    project = copy_example(tmp_path_factory.mktemp("ex") / "project")
    runs = expand_runs(project / "dispatch" / "experiments.yaml")
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "EXP_ID", "EXP_GROUP")}
    env["PYTHONPATH"] = str(write_bundle(tmp_path_factory.mktemp("runtime")))
    procs = {}
    sidecars = {}
    for spec in runs:
        sidecars[spec.id] = project / ".reconciler" / "runs" / spec.id
        sidecars[spec.id].mkdir(parents=True)
        command = spec.render(spec.command, str(project / ".reconciler" / "checkpoints" / spec.id))
        run_env = {**env, "RECONCILER_RUN_DIR": str(sidecars[spec.id])}
        procs[spec.id] = subprocess.Popen(
            command, shell=True, cwd=project, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    for exp_id, proc in procs.items():
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{exp_id} failed:\n{out}"
    return project, sidecars


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def test_the_pilot_has_twelve_runs_in_two_stages() -> None:
    runs = expand_runs(EXAMPLE / "dispatch" / "experiments.yaml")
    assert len(runs) == 12
    assert {r.base_id for r in runs if r.stage == 1} == {"logreg_blobs", "logreg_moons"}
    assert {r.base_id for r in runs if r.stage == 2} == {"mlp_blobs", "mlp_moons"}
    for r in runs:
        for placeholder in ("{seed}", "{exp_id}", "{checkpoint_dir}", "{result_file}"):
            assert placeholder in r.command, (r.id, placeholder)


def test_every_run_writes_the_canonical_result_csv(ran: tuple[Path, dict[str, Path]]) -> None:
    project, _ = ran
    for spec in expand_runs(project / "dispatch" / "experiments.yaml"):
        columns, rows = read_rows(project / spec.result_path)
        assert columns == RESULT_COLUMNS
        assert [r["metric"] for r in rows] == ["accuracy", "loss"]
        for row in rows:
            assert (row["exp_id"], row["method"], row["dataset"]) == (spec.id, spec.method, spec.dataset)
            assert row["group"] == spec.group.value
            assert row["seed"] == str(spec.seed)
            assert math.isfinite(float(row["value"]))
            assert row["host"] == socket.gethostname()
            assert row["gpu"] == ""
            assert FINISHED_AT.match(row["finished_at"])
        assert 0.5 <= float(rows[0]["value"]) <= 1.0


def test_checkpoints_and_sidecars_are_written(ran: tuple[Path, dict[str, Path]]) -> None:
    project, sidecars = ran
    schema = json.loads((REPO / "schemas" / "sidecar.schema.json").read_text())
    for exp_id, run_dir in sidecars.items():
        ckpt = json.loads((project / ".reconciler" / "checkpoints" / exp_id / f"{exp_id}.ckpt.json").read_text())
        assert ckpt["epoch"] == 20
        side = json.loads((run_dir / "status.json").read_text())
        jsonschema.validate(side, schema)
        assert side["progress"] == 1.0
        assert side["wandb_mode"] == "disabled"
        assert set(side["final"]) == {"accuracy", "loss"}
    leftovers = list(project.rglob("*.tmp"))
    assert leftovers == [], "atomic writes left temporary files behind"


def test_the_method_beats_the_baseline_on_moons(ran: tuple[Path, dict[str, Path]]) -> None:
    """The pilot's claim holds on this data, so a demo of the design table shows a real gap."""
    project, _ = ran

    def mean_accuracy(base: str) -> float:
        values = []
        for seed in (0, 1, 2):
            _, rows = read_rows(project / "experiments" / "results" / f"{base}_s{seed}.csv")
            values.append(float(rows[0]["value"]))
        return statistics.mean(values)

    assert mean_accuracy("mlp_moons") > mean_accuracy("logreg_moons") + 0.03
