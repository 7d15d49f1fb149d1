"""Controller-side tidying after a run is done: the target's checkpoint is deleted only once the
Hub (the loopback fake Hub here) lists the files the job reported uploaded; a Hub that does not
list them keeps the checkpoint and opens an escalation. Done once per run."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.engine.project import git, make_project, reconcile, until
from tests.fakes.fakehub import FakeHub

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

# A job that uploads "for real" as far as the sidecar says (the test puts the files on the fake
# Hub itself, or not) and leaves its checkpoint in place, like a job killed right after uploading.
UPLOADER = textwrap.dedent(
    """
    import json, os, sys
    if "--dry-run" in sys.argv:
        sys.exit(0)
    exp = os.environ["EXP_ID"]
    ckpt = sys.argv[sys.argv.index("--ckpt") + 1]
    os.makedirs(ckpt, exist_ok=True)
    with open(os.path.join(ckpt, "model.bin"), "wb") as f:
        f.write(b"weights")
    side = {"hf_artifact_url": "http://hub/lab/ckpts/tree/main/checkpoints/" + exp,
            "hf_artifact_repo": "lab/ckpts", "hf_artifact_path": "checkpoints/" + exp,
            "hf_artifact_files": ["model.bin"]}
    with open(os.path.join(os.environ["RECONCILER_RUN_DIR"], "status.json"), "w") as f:
        json.dump(side, f)
    out = sys.argv[sys.argv.index("--out") + 1]
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write("exp_id,method,dataset,group,metric,seed,value,host,gpu,finished_at\\n")
        f.write(exp + ",m,d,main,accuracy,0,0.9,h,,2026-11-26T00:00:00Z\\n")
    """
)


def test_checkpoint_deleted_only_after_the_hub_lists_it(tmp_path: Path, fake_hub: FakeHub) -> None:
    project = make_project(tmp_path, seeds=2)
    (project / "up.py").write_text(UPLOADER)
    dispatch = project / "dispatch" / "experiments.yaml"
    text = dispatch.read_text()
    start = text.index("python3 job.py")
    end = text.index("seeds:")
    dispatch.write_text(text[:start] + "python3 up.py --ckpt {checkpoint_dir} --out {result_file}\n    " + text[end:])
    config = project / "config" / "reconciler.yaml"
    config.write_text(config.read_text() + "huggingface: {repo: lab/ckpts}\n")
    git(project, "add", "-A")
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "uploader")
    # Only job_s0's files are on the Hub.
    fake_hub.add_file("lab/ckpts", "checkpoints/job_s0/model.bin", b"weights")
    ckpts = project / ".reconciler" / "runs-local" / "checkpoints"

    def state() -> dict[str, dict[str, object]]:
        path = project / "dispatch" / "state.json"
        return {e["id"]: e for e in json.loads(path.read_text())["experiments"]} if path.exists() else {}

    def tidied() -> bool:
        s = state()
        return len(s) == 2 and all(any(c["type"] == "Tidied" for c in e.get("conditions", [])) for e in s.values())

    until(tidied, deadline=90, step=lambda: reconcile(project, "--once"))
    s = state()
    assert {e["status"] for e in s.values()} == {"done"}
    assert not (ckpts / "job_s0").exists()  # confirmed on the Hub, then deleted
    assert (ckpts / "job_s1" / "model.bin").read_bytes() == b"weights"  # not listed: kept
    escalation = s["job_s1"]["escalation"]
    assert isinstance(escalation, dict) and escalation["kind"] == "artifact" and escalation["status"] == "open"
    assert s["job_s0"].get("escalation") is None
    # Once: no more Hub listings on later passes.
    before = len(fake_hub.paths("GET")) + len(fake_hub.paths("POST"))
    reconcile(project, "--once")
    assert len(fake_hub.paths("GET")) + len(fake_hub.paths("POST")) == before
