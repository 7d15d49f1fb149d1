"""Fixtures of the dashboard tests: a reconciled copy of the example project, a served dashboard,
and (for the browser tests) a headless Chromium.

The base project has the example pilot's shape (12 runs, two stages; its own stdlib job script,
whose sidecar carries a loss history) plus one experiment made to fail (``broken``: exits 3, no
retry) placed in the design table as a third row, so the page has done cells, a failed cell, an
open escalation and learning curves. It is reconciled for real, once per session, by
``reconcile_once`` passes; each test works on its own copy (``shutil.copytree`` keeps ``.git``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.dashboard import Dashboard
from reconciler.engine import reconcile_once
from reconciler.model.status import StateFile
from tests.dashboard.cdp import Browser, chromium_path
from tests.projectkit import commit_project, git

JOB = """\
import argparse, json, os, random, socket, sys
p = argparse.ArgumentParser()
p.add_argument("--exp"); p.add_argument("--method"); p.add_argument("--dataset"); p.add_argument("--group")
p.add_argument("--seed", type=int, default=0); p.add_argument("--out"); p.add_argument("--fail", type=int, default=0)
p.add_argument("--dry-run", action="store_true")
a = p.parse_args()
if a.dry_run:
    sys.exit(0)
print(f"{a.exp}: {a.method} on {a.dataset}, seed {a.seed}", flush=True)
if a.fail:
    print("Traceback (most recent call last):\\nRuntimeError: the flag is wrong", file=sys.stderr)
    sys.exit(a.fail)
rng = random.Random(f"{a.method}/{a.dataset}/{a.seed}")
base = {"logreg": {"blobs": 0.91, "moons": 0.84}, "mlp": {"blobs": 0.93, "moons": 0.95}}[a.method][a.dataset]
history, loss = [], 0.7
for step in range(1, 11):
    loss = loss * 0.8 + rng.uniform(0, 0.02)
    history.append({"step": step, "loss": round(loss, 4)})
    print(f"step {step}/10 loss={loss:.4f}")
acc = round(base + rng.uniform(-0.02, 0.02), 4)
print(f"done: accuracy={acc}")
os.makedirs(os.path.dirname(a.out), exist_ok=True)
with open(a.out + ".tmp", "w") as f:
    f.write("exp_id,method,dataset,group,metric,seed,value,host,gpu,finished_at\\n")
    for metric, value in (("accuracy", acc), ("loss", round(loss, 4))):
        f.write(f"{a.exp},{a.method},{a.dataset},{a.group},{metric},{a.seed},{value},{socket.gethostname()},,2026-11-26T00:00:00Z\\n")
os.replace(a.out + ".tmp", a.out)
run_dir = os.environ.get("RECONCILER_RUN_DIR")
if run_dir:
    doc = {"exp_id": a.exp, "progress": 1.0, "metrics": {"accuracy": acc}, "history": history,
           "wandb_run_id": f"https://wandb.ai/lab/example/runs/{a.exp}"}
    with open(os.path.join(run_dir, "status.json"), "w") as f:
        json.dump(doc, f)
"""

CONFIG = """\
version: 1
project: example
targets:
  local:
    kind: local
    root: .reconciler/runs-local
    python: python3
    max_runs: 8
policies:
  poll_interval: 1
  max_retries: 0
  backoff: {base_seconds: 0, factor: 1, max_seconds: 0}
"""


def _experiment(method: str, dataset: str, group: str, stage: int, seeds: str = "[0, 1, 2]", fail: int = 0) -> str:
    exp_id = "broken" if fail else f"{method}_{dataset}"
    seed = "{seed}" if not fail else "0"
    return f"""\
  - id: {exp_id}
    group: {group}
    method: {method if not fail else "broken"}
    dataset: {dataset}
    stage: {stage}
{"    seeds: " + seeds + chr(10) if not fail else ""}\
    command: >-
      python3 job.py --exp {{exp_id}} --method {method} --dataset {dataset} --group {group}
      --seed {seed} --out {{result_file}} --fail {fail}
"""


DESIGN = {
    "title": "Pilot: does a hidden layer help on non-linear data?",
    "caption": "Test accuracy (mean over seeds 0, 1, 2); higher is better.",
    "phase": "pilot",
    "rows": [
        {"id": "logreg", "label": "Logistic regression", "group": "baseline"},
        {"id": "mlp", "label": "MLP (1 hidden layer)", "group": "main", "note": "ours"},
        {"id": "broken", "label": "Broken on purpose", "group": "ablation"},
    ],
    "cols": [
        {"id": "blobs", "label": "Blobs", "metric": "accuracy", "direction": "higher"},
        {"id": "moons", "label": "Moons", "metric": "accuracy", "direction": "higher"},
    ],
    "cells": [
        {"exp_id": "logreg_blobs", "row": "logreg", "col": "blobs", "purpose": "linear baseline"},
        {"exp_id": "logreg_moons", "row": "logreg", "col": "moons", "purpose": "linear baseline"},
        {"exp_id": "mlp_blobs", "row": "mlp", "col": "blobs", "purpose": "parity on easy data"},
        {"exp_id": "mlp_moons", "row": "mlp", "col": "moons", "purpose": "core claim"},
        {"exp_id": "broken", "row": "broken", "col": "moons", "purpose": "an escalation to decide on"},
    ],
}


def make_project(dest: Path) -> Path:
    """The example pilot's shape (logreg/mlp x blobs/moons x 3 seeds, two stages) with a stdlib
    job script of its own, plus ``broken`` (exits 3, no retry) as a third row of the design."""
    experiments = [
        _experiment("logreg", "blobs", "baseline", 1),
        _experiment("logreg", "moons", "baseline", 1),
        _experiment("mlp", "blobs", "main", 2),
        _experiment("mlp", "moons", "main", 2),
        _experiment("mlp", "moons", "ablation", 2, fail=3),
    ]
    head = "version: 1\ndefaults:\n  phase: pilot\n  expected_duration_hours: 0.01\n  gpus: 0\n  targets: [local]\n"
    head += "  result_file: experiments/results/{exp_id}.csv\nexperiments:\n"
    files = {
        "config/reconciler.yaml": CONFIG,
        "dispatch/experiments.yaml": head + "".join(experiments),
        "dispatch/decisions.yaml": "version: 1\ndecisions: []\n",
        "experiments/pilot_design.json": json.dumps(DESIGN, indent=2) + "\n",
        "job.py": JOB,
    }
    project = commit_project(dest, files, message="desired state: a pilot and a broken run")
    git(project, "config", "user.name", "dashboard test")  # a checkout with its own identity, as a person has
    git(project, "config", "user.email", "dashboard@localhost")
    return project


def state_of(project: Path) -> StateFile:
    return StateFile.loads((project / "dispatch" / "state.json").read_text())


def settle(project: Path, deadline: float = 120.0) -> StateFile:
    """Passes until nothing is pending, queued or running."""
    end = time.monotonic() + deadline
    while True:
        reconcile_once(project, log=lambda _m: None)
        state = state_of(project)
        if all(e.status.value not in ("pending", "queued", "running") for e in state.entries):
            return state
        if time.monotonic() > end:
            raise AssertionError(f"not settled: {[(e.id, e.status.value) for e in state.entries]}")
        time.sleep(0.3)


@pytest.fixture(scope="session")
def base_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = make_project(tmp_path_factory.mktemp("dash-base") / "project")
    settle(project)
    return project


@pytest.fixture
def project(base_project: Path, tmp_path: Path) -> Path:
    """A private copy of the reconciled project (tests commit into it)."""
    dest = tmp_path / "project"
    shutil.copytree(base_project, dest, symlinks=True)
    return dest


@pytest.fixture
def dashboard(project: Path) -> Iterator[Dashboard]:
    dash = Dashboard(project, port=0).start()
    try:
        yield dash
    finally:
        dash.stop()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``$RECONCILER_ARTIFACTS/dashboard`` when set, else a temp dir."""
    root = os.environ.get("RECONCILER_ARTIFACTS")
    path = Path(root) / "dashboard" if root else tmp_path_factory.mktemp("dash-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    b = Browser(executable)
    try:
        yield b
    finally:
        b.close()
