"""A job's sidecar is the job's to write, not to fill the state with (issue 15, item 4): a job
rewriting a 180 KB random ``status.json`` every second put all of it in ``dispatch/state.json``.
The state keeps a whitelisted, size-capped subset and names what it dropped."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any

from reconciler.model.sidecar import DROPPED, MAX_BYTES, MAX_TEXT, confine_sidecar
from tests.engine.project import git, make_project, newest_entries, reconcile, until

BLOAT_JOB = textwrap.dedent(
    """\
    import json, os, secrets, time
    path = os.path.join(os.environ["RECONCILER_RUN_DIR"], "status.json")
    for n in range(40):
        doc = {f"k{secrets.token_hex(8)}": secrets.token_hex(40) for _ in range(1600)}  # with the rest: ~180 KB
        doc.update(progress=n / 40, step=n, wandb_run_id="https://wandb.ai/lab/proj/runs/abc123",
                   metrics={"loss": 0.5, "acc": float("nan")}, notes="x" * 10_000)
        with open(path + ".tmp", "w") as f:
            json.dump(doc, f)
        os.replace(path + ".tmp", path)
        time.sleep(0.25)
    """
)


def test_a_180_kb_random_sidecar_leaves_a_small_whitelisted_subset_in_the_state(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    (project / "bloat.py").write_text(BLOAT_JOB)
    (project / "dispatch" / "experiments.yaml").write_text(
        textwrap.dedent(
            """\
            version: 1
            defaults: {phase: pilot, expected_duration_hours: 0.01, targets: [local], max_retries: 0}
            experiments:
              - {id: bloat, command: "python3 bloat.py", group: main, method: m, dataset: d}
            """
        )
    )
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "add", "-A")
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "bloating job")

    def sidecar() -> dict[str, Any]:
        return dict(newest_entries(project).get("bloat", {}).get("sidecar") or {})

    def step() -> None:
        ran = reconcile(project, "--once")
        assert "Traceback" not in ran.stderr, ran.stderr

    until(lambda: "progress" in sidecar(), step=step, deadline=60)
    kept = sidecar()
    assert newest_entries(project)["bloat"]["wandb_run_id"] == "https://wandb.ai/lab/proj/runs/abc123"
    assert kept["metrics"] == {"loss": 0.5, "acc": None}
    assert len(kept["notes"]) == MAX_TEXT
    assert not any(key.startswith("k") for key in kept)
    assert len(kept[DROPPED]) == 21 and kept[DROPPED][-1] == "… and 1580 more"
    assert len(json.dumps(kept)) <= MAX_BYTES + 2048
    for path in [project / "dispatch" / "state.json", *(project / ".reconciler").glob("*.json")]:
        assert path.stat().st_size < 64 * 1024, path


def test_values_are_cut_to_size() -> None:
    doc: dict[str, Any] = {
        "metrics": {f"m{i}": float(i) for i in range(1000)} | {"x" * 100: 1.0},
        "final": {"deep": [[[[["too deep"]]]]], "inf": math.inf, "big": 10**30},
        "history": [{"step": i, "loss": 1.0 / (i + 1)} for i in range(10_000)],
        "hf_artifact_files": [f"f{i}" for i in range(1000)],
        "step": 2**70,
        "wandb_run_id": "w" * 100_000,
    }
    kept = confine_sidecar(doc)
    assert len(kept["metrics"]) == 64 and "x" * 100 not in kept["metrics"]
    assert kept["final"] == {"deep": [[]], "inf": None}
    assert len(kept["hf_artifact_files"]) == 64
    assert len(kept["wandb_run_id"]) == MAX_TEXT
    assert len(kept["history"]) == 256 and kept["history"][-1]["step"] == 9999  # the newest points
    assert "step" not in kept and kept[DROPPED] == ["step"]  # beyond 64 bits
    assert len(json.dumps(kept)) <= MAX_BYTES
    many = confine_sidecar({"notes": "n" * 400, "metrics": {f"m{i:02d}": "v" * 500 for i in range(64)}})
    assert "metrics" not in many and many[DROPPED] == ["metrics"]  # over MAX_BYTES: the largest goes
