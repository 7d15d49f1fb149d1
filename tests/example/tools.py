"""Helpers shared by the example, hooks and scaffold tests: paths, subprocesses, throwaway git repos."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from reconciler.model.spec import ExperimentSpec, Group

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "project"
BIN = Path(sys.executable).parent
RESULT_COLUMNS = ["exp_id", "method", "dataset", "group", "metric", "seed", "value", "host", "gpu", "finished_at"]


def tool(name: str) -> str:
    """A console script installed next to the running interpreter (the venv's ``reconcile``)."""
    path = BIN / name
    assert path.exists(), f"{name} is not installed in {BIN}; pip install -e '.[dev]'"
    return str(path)


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False, **kw)


def git_env(tmp: Path) -> dict[str, str]:
    """An environment isolated from the user's git and pre-commit configuration."""
    config = tmp / "gitconfig"
    if not config.exists():
        config.write_text("[user]\n\tname = tester\n\temail = tester@localhost\n[init]\n\tdefaultBranch = main\n")
    env = dict(os.environ)
    env.update(
        GIT_CONFIG_GLOBAL=str(config),
        GIT_CONFIG_NOSYSTEM="1",
        PRE_COMMIT_HOME=str(tmp / "pre-commit-home"),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    env.pop("RECONCILER_ALLOW_STATUS_EDIT", None)
    return env


def git(repo: Path, env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = run(["git", *args], cwd=repo, env=env)
    if check:
        assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc


def copy_example(dest: Path) -> Path:
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", ".reconciler", "results"))
    return dest


def expand_runs(dispatch: Path) -> list[ExperimentSpec]:
    """The runs of a dispatch file (defaults applied, seeds expanded), built without the loader."""
    doc = yaml.safe_load(dispatch.read_text())
    runs = []
    for exp in doc["experiments"]:
        merged = {**doc.get("defaults", {}), **exp}
        for seed in merged.get("seeds") or [None]:
            runs.append(
                ExperimentSpec(
                    id=exp["id"] if seed is None else f"{exp['id']}_s{seed}",
                    base_id=exp["id"],
                    command=merged["command"],
                    source=str(dispatch),
                    seed=seed,
                    group=Group(merged.get("group", "main")),
                    method=merged.get("method", ""),
                    dataset=merged.get("dataset", ""),
                    stage=merged.get("stage", 1),
                    result_file=merged.get("result_file", "experiments/results/{exp_id}.csv"),
                )
            )
    return runs
