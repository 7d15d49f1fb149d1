"""A minimal valid project, written file by file (every line number below is relied on by tests)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

FILES: dict[str, str] = {
    "config/reconciler.yaml": """\
version: 1
project: mini
targets:
  local:
    kind: local
    root: .reconciler/runs
  lab1:
    kind: ssh
    host: lab1
    port: 22
    root: reconciler/mini
policies:
  poll_interval: 30
""",
    "dispatch/main.yaml": """\
version: 1
defaults:
  phase: pilot
  expected_duration_hours: 0.5
  targets: [local]
experiments:
  - id: logreg_blobs
    command: python train.py --seed {seed} --out {result_file}
    seeds: [0, 1]
    group: baseline
    method: logreg
    dataset: blobs
  - id: mlp_blobs
    command: python train.py --model mlp --seed {seed} --ckpt {checkpoint_dir} --out {result_file}
    seeds: [0, 1]
    group: main
    method: mlp
    dataset: blobs
    targets: [local, lab1]
    stage: 2
  - id: summary
    command: python summarize.py --out {result_file}
    group: analysis
""",
    "dispatch/decisions.yaml": """\
version: 1
decisions:
  - id: d1
    exp: logreg_blobs_s0
    action: retry
    reason: fixed the data path
  - id: d2
    action: approve_stage
    stage: 2
""",
    "experiments/definitions.json": """\
[
  {"id": "logreg_blobs", "name": "Logistic regression", "phase": "pilot", "group": "baseline", "seeds": [0, 1]},
  {"id": "mlp", "name": "MLP", "phase": "pilot", "group": "main"}
]
""",
    "experiments/pilot_design.json": """\
{
  "title": "Pilot",
  "phase": "pilot",
  "rows": [
    {"id": "logreg", "label": "LogReg", "group": "baseline"},
    {"id": "mlp", "label": "MLP", "group": "ours"}
  ],
  "cols": [{"id": "blobs", "label": "Blobs", "metric": "accuracy"}],
  "cells": [
    {"exp_id": "logreg_blobs", "row": "logreg", "col": "blobs"},
    {"exp_id": "mlp_blobs_s0", "row": "mlp", "col": "blobs", "status": "todo"}
  ]
}
""",
    "dispatch/state.json": """\
{
  "version": 1,
  "project": "mini",
  "updated": "2026-11-26T10:00:00+00:00",
  "decisions_applied": [],
  "stages_approved": [],
  "experiments": [
    {"id": "logreg_blobs_s0", "status": "failed", "retry_count": 1, "seed": 0}
  ]
}
""",
}

EXPERIMENTS = 5
"""Runs after seed expansion: logreg_blobs x2, mlp_blobs x2, summary."""


def write_project(root: Path, overrides: dict[str, str | None] | None = None) -> Path:
    """Write the minimal project under ``root``; ``overrides`` replace (or, with ``None``, drop) files."""
    files: dict[str, str | None] = {**FILES, **(overrides or {})}
    for rel, text in files.items():
        if text is None:
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def overlay(src: Path, root: Path) -> None:
    """Copy the files of a fixture folder over the project (``expected.txt`` and ``delete.txt`` excluded)."""
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        if path.is_file() and rel not in ("expected.txt", "delete.txt"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, root / rel)
    deletions = src / "delete.txt"
    if deletions.is_file():
        for rel in deletions.read_text().split():
            (root / rel).unlink()


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file and folder under ``root`` with its content hash and mtime: "nothing was written"."""
    out: dict[str, tuple[str, int]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        stat = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        out[rel] = (digest, stat.st_mtime_ns)
    return out
