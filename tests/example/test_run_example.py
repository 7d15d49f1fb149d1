"""The README's first set-up command: ``examples/run_example.py`` runs the example project for real
in a fresh repository and ends with every experiment done and each transition committed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.example.tools import REPO, git_env

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default


def test_run_example_drives_the_example_to_done(tmp_path: Path) -> None:
    dest = tmp_path / "example-run"
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "run_example.py"), str(dest)],
        cwd=tmp_path, env=git_env(tmp_path), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = json.loads((dest / "dispatch" / "state.json").read_text())
    assert len(state["experiments"]) == 12 and {e["status"] for e in state["experiments"]} == {"done"}
    assert all(e["results"]["accuracy"] > 0 for e in state["experiments"])
    log = subprocess.run(
        ["git", "log", "--format=%s", "--", "dispatch/state.json"], cwd=dest, capture_output=True, text=True, check=True
    ).stdout
    assert "launched" in log and "done" in log
    assert subprocess.run(["git", "status", "--porcelain"], cwd=dest, capture_output=True, text=True).stdout == ""
    assert "reconcile log logreg_blobs_s0" in proc.stdout
