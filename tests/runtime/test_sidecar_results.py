"""The run from the environment, the sidecar, the result CSV and the final metrics."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from reconciler import runtime
from reconciler.results import check_result


def test_outside_a_reconciler_run_everything_has_a_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EXP_ID", "RECONCILER_RUN_DIR", "RECONCILER_ATTEMPT", "RECONCILER_PROJECT", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    run = runtime.current()
    assert (run.exp_id, run.run_dir, run.attempt, run.project, run.gpus) == ("local", None, 1, None, "")
    assert runtime.current("mine").exp_id == "mine"
    assert not run.managed
    assert runtime.update_sidecar({"x": 1}) is None
    assert runtime.set_progress(1, 10) is None
    assert runtime.write_final({"accuracy": 0.5}) is None
    assert runtime.read_sidecar() == {}


def test_the_wrappers_environment_is_read(run_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_ATTEMPT", "3")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,2")
    run = runtime.current("ignored")
    assert (run.exp_id, run.run_dir, run.attempt, run.project, run.gpus) == ("exp1_s0", run_env, 3, "demo", "1,2")
    assert run.sidecar_path == run_env / "status.json"


def test_earlier_attempts_are_found_newest_first(run_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parent = run_env.parent
    for n in ("2", "3", "10", "junk"):
        (parent / n).mkdir()
    monkeypatch.setenv("RECONCILER_RUN_DIR", str(parent / "3"))
    monkeypatch.setenv("RECONCILER_ATTEMPT", "3")
    assert runtime.current().earlier_run_dirs() == [parent / "2", parent / "1"]


def test_the_standard_flags() -> None:
    parser = runtime.add_standard_args(argparse.ArgumentParser())
    args = parser.parse_args(["--seed", "3", "--checkpoint-dir", "ck", "--resume", "--dry-run"])
    assert (args.seed, args.checkpoint_dir, args.resume, args.dry_run) == (3, "ck", True, True)
    defaults = parser.parse_args([])
    assert (defaults.seed, defaults.checkpoint_dir, defaults.resume, defaults.dry_run) == (0, None, False, False)


def test_sidecar_updates_merge_clear_and_leave_no_temporary_files(run_env: Path) -> None:
    runtime.update_sidecar({"hf_artifact_url": "u", "notes": "a"})
    doc = runtime.update_sidecar({"hf_artifact_url": None})
    assert doc is not None
    on_disk = json.loads((run_env / "status.json").read_text())
    assert on_disk == doc
    assert on_disk["hf_artifact_url"] is None and on_disk["notes"] == "a"
    assert (on_disk["exp_id"], on_disk["attempt"]) == ("exp1_s0", 1)
    assert [p.name for p in run_env.iterdir()] == ["status.json"]


def test_concurrent_writers_in_one_process_lose_no_field(run_env: Path) -> None:
    def write(i: int) -> None:
        for j in range(20):
            runtime.update_sidecar({f"k{i}": j})

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    doc = runtime.read_sidecar()
    assert all(doc[f"k{i}"] == 19 for i in range(4))


def test_progress_follows_the_sidecar_schema(run_env: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "sidecar.schema.json").read_text())
    doc = runtime.set_progress(5, 20, epoch=1, loss=float("nan"))
    assert doc is not None
    assert (doc["step"], doc["total"], doc["progress"], doc["epoch"], doc["loss"]) == (5, 20, 0.25, 1, None)
    jsonschema.validate(doc, schema)
    with pytest.raises(ValueError):
        runtime.set_progress(-1, 10)


def rows(**over: Any) -> list[dict[str, Any]]:
    return runtime.result_rows(
        {"accuracy": 0.875, "loss": 1e-7}, method="mlp", dataset="moons", group="main", seed=0, **over
    )


def test_the_result_csv_passes_the_controllers_check(run_env: Path, tmp_path: Path) -> None:
    path = runtime.write_results(rows(), tmp_path / "out" / "r.csv")
    text = path.read_text()
    assert text.splitlines()[0] == ",".join(runtime.COLUMNS)
    check = check_result(text, "exp1_s0")
    assert check.ok and check.rows == 2, check.message
    assert ",1e-07," in text  # full precision, not a fixed number of decimals
    assert list((tmp_path / "out").iterdir()) == [path]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"value": float("nan")}, "not finite"),
        ({"group": "ours"}, "group"),
        ({"colour": "red"}, "unknown columns"),
        ({"exp_id": "other"}, "one exp_id"),
    ],
)
def test_bad_rows_are_refused(tmp_path: Path, change: dict[str, object], message: str) -> None:
    bad = rows()
    bad[-1] = {**bad[-1], **change}
    with pytest.raises(ValueError, match=message):
        runtime.write_results(bad, tmp_path / "r.csv")
    assert not (tmp_path / "r.csv").exists()


def test_write_final_writes_the_file_and_the_sidecar(run_env: Path) -> None:
    path = runtime.write_final({"accuracy": 0.9})
    assert path == run_env / "final" / "metrics.json"
    doc = json.loads(path.read_text())
    assert doc["metrics"] == {"accuracy": 0.9} and doc["exp_id"] == "exp1_s0"
    side = runtime.read_sidecar()
    assert side["final"] == side["metrics"] == {"accuracy": 0.9}
    with pytest.raises(ValueError):
        runtime.write_final({"loss": float("inf")})
