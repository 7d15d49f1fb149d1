"""A real-GPU check, run by hand on a machine with NVIDIA GPUs (no pytest needed):

    python -m tests.gpu.check_real_gpu OUT_DIR

1. Runs the exact ``nvidia-smi`` queries the probe runs, keeps their raw output under
   ``OUT_DIR/nvidia-smi/`` (golden text for the parser tests) and parses it with our parser.
2. Reconciles a small project on the local target of this machine until done: two runs that each
   ask for one GPU with a VRAM estimate; each run records the ``CUDA_VISIBLE_DEVICES`` it got and
   ``nvidia-smi -L`` as seen from inside. Checks both runs got a real, distinct GPU index and that
   the status file records it. Copies the state and the run logs to ``OUT_DIR``.

Exits non-zero on any failed check.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from reconciler.backends.gpus import APPS_QUERY, GPU_QUERY, build_gpus

TRAIN = r"""
import csv, os, subprocess, sys, time
out = sys.argv[sys.argv.index("--result-file") + 1]
exp = os.environ["EXP_ID"]
visible = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
seen = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip()
print(f"CUDA_VISIBLE_DEVICES={visible}")
print(seen)
time.sleep(3)
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["exp_id", "method", "dataset", "group", "metric", "seed", "value", "host", "gpu", "finished_at"])
    w.writerow([exp, "probe", "gpu", "main", "visible_gpu", 0, visible, os.uname()[1], visible, time.time()])
"""


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    raw = out / "nvidia-smi"
    raw.mkdir(exist_ok=True)
    texts = {}
    for name, argv in (("query-gpu", GPU_QUERY), ("query-compute-apps", APPS_QUERY), ("L", ("nvidia-smi", "-L"))):
        done = subprocess.run(list(argv), capture_output=True, text=True)
        (raw / f"{name}.txt").write_text(done.stdout)
        (raw / f"{name}.argv").write_text(" ".join(argv) + f"\nexit {done.returncode}\n{done.stderr}")
        texts[name] = done.stdout
    gpus = build_gpus(texts["query-gpu"], texts["query-compute-apps"])
    print("parsed GPUs:")
    for g in gpus:
        print(f"  {g}")
    if not gpus:
        failures.append("no GPU parsed from nvidia-smi")

    project = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    (project / "config").mkdir()
    (project / "dispatch").mkdir()
    (project / "experiments" / "scripts").mkdir(parents=True)
    (project / "experiments" / "scripts" / "train.py").write_text(TRAIN)
    (project / "config" / "reconciler.yaml").write_text(
        textwrap.dedent(
            """\
            version: 1
            project: gpucheck
            targets:
              local: {kind: local, root: .reconciler/runs-local, python: python3}
            policies: {poll_interval: 1}
            """
        )
    )
    (project / "dispatch" / "experiments.yaml").write_text(
        textwrap.dedent(
            """\
            version: 1
            defaults: {phase: pilot, expected_duration_hours: 0.01, gpus: 1, vram_gb: 2, targets: [local],
                       result_file: "experiments/results/{exp_id}.csv", metrics: [visible_gpu]}
            experiments:
              - id: gpu_a
                group: main
                method: probe
                dataset: gpu
                seeds: [0, 1]
                command: python3 experiments/scripts/train.py --result-file {result_file}
            """
        )
    )
    (project / ".gitignore").write_text(".reconciler/\n")
    git = ["git", "-c", "user.name=gpu", "-c", "user.email=gpu@localhost"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=project, check=True)
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "gpu check"], cwd=project, check=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "gpu", "GIT_AUTHOR_EMAIL": "gpu@localhost"}
    env.update(GIT_COMMITTER_NAME="gpu", GIT_COMMITTER_EMAIL="gpu@localhost")
    reconcile = [sys.executable, "-m", "reconciler"]
    done = subprocess.run(
        [*reconcile, "--until-done", "-C", str(project)], env=env, capture_output=True, text=True, timeout=240
    )
    (out / "reconcile.log").write_text(done.stdout + done.stderr)
    print(done.stdout[-3000:], done.stderr[-3000:])
    state = json.loads((project / "dispatch" / "state.json").read_text())
    shutil.copy(project / "dispatch" / "state.json", out / "state.json")
    indices = {str(g.index) for g in gpus}
    seen: list[str] = []
    for entry in state["experiments"]:
        status, gpu = entry.get("status"), entry.get("gpu")
        print(f"{entry['id']}: status={status} gpu={gpu}")
        if status != "done":
            failures.append(f"{entry['id']} ended {status}")
        log = next((project / ".reconciler" / "runs-local" / "runs" / entry["id"]).glob("*/stdout.log"), None)
        text = log.read_text() if log else ""
        (out / f"{entry['id']}.log").write_text(text)
        visible = next((line.split("=", 1)[1] for line in text.splitlines() if line.startswith("CUDA_VISIBLE")), "")
        seen.append(visible)
        if visible not in indices or visible != str(gpu):
            failures.append(f"{entry['id']}: CUDA_VISIBLE_DEVICES={visible!r}, recorded gpu {gpu}, GPUs {indices}")
    if len(gpus) > 1 and len(set(seen)) != len(seen):
        failures.append(f"two runs shared a GPU although several were free: {seen}")
    print("\n".join(["FAILED:", *failures]) if failures else "GPU check passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "gpu-check-out")))
