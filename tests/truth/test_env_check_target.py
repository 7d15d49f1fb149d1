"""Issue 14, item 9: one experiment's failing ``--dry-run`` never fails its target.

The environment check is the target's: neutral (code present, env activates, Python runs, GPUs
visible) or the config's ``env_check.command``; and ``plan`` lists what waits and why instead of
"nothing to do". Real git projects and real passes on the local target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.engine.project import CONFIG, JOB, git, launches, reconcile, until

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

DISPATCH = """\
version: 1
defaults:
  phase: pilot
  expected_duration_hours: 0.01
  targets: [local]
  max_retries: 0
experiments:
  - id: {bad}
    command: python3 -c 'import sys; sys.exit("crash even on --dry-run")'
    seeds: [0]
    group: main
    method: m
    dataset: d
  - id: {good}
    command: python3 job.py --exp {{exp_id}} --seed {{seed}} --out {{result_file}}
    seeds: [0]
    group: main
    method: m
    dataset: d
"""


def make(tmp_path: Path, config_extra: str = "", bad: str = "abad", good: str = "good") -> Path:
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "dispatch").mkdir()
    (project / "config" / "reconciler.yaml").write_text(CONFIG + config_extra)
    (project / "dispatch" / "experiments.yaml").write_text(DISPATCH.format(bad=bad, good=good))
    (project / "job.py").write_text(JOB)
    (project / ".gitignore").write_text(".reconciler/\n")
    git(project, "init", "-q", "-b", "main")
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "add", "-A")
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "desired state")
    return project


def statuses(project: Path) -> dict[str, str]:
    doc = json.loads((project / "dispatch" / "state.json").read_text())
    return {e["id"]: e["status"] for e in doc["experiments"]}


def test_a_crashing_experiment_does_not_fail_its_target(tmp_path: Path) -> None:
    # "abad" sorts first: the old check took it as the target's representative command.
    project = make(tmp_path)
    first = reconcile(project, "--once")
    assert first.returncode == 0, first.stdout + first.stderr
    verdict = json.loads((project / "progress" / "env_local.json").read_text())
    assert verdict["status"] == "ENV_READY", verdict
    assert verdict["dry_run_command"] is None  # neutral: no experiment's command ran
    until(
        lambda: statuses(project) == {"abad_s0": "failed", "good_s0": "done"},
        step=lambda: reconcile(project, "--once"),
    )
    assert launches(project) == ["good_s0"]

    check = reconcile(project, "env-check", "-C", str(project))  # the CLI check: the same neutral one
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith("local: ENV_READY")


def test_the_configured_check_command_decides_and_plan_says_what_waits(tmp_path: Path) -> None:
    extra = "  env_check: {command: 'python3 -c \"import not_installed_pkg\"'}\n"
    project = make(tmp_path, extra)
    first = reconcile(project, "--once")
    assert first.returncode in (0, 1), first.stdout + first.stderr
    verdict = json.loads((project / "progress" / "env_local.json").read_text())
    assert verdict["status"] == "ENV_FAILED"
    assert verdict["dry_run_command"] == 'python3 -c "import not_installed_pkg"'
    assert verdict["evidence"][-1] == "ModuleNotFoundError: No module named 'not_installed_pkg'"
    plan = reconcile(project, "plan", "-C", str(project))
    assert "nothing to do" not in plan.stdout, plan.stdout
    assert "  good_s0: waiting: local env failed (ModuleNotFoundError" in plan.stdout, plan.stdout
    assert "  abad_s0: waiting: local env failed" in plan.stdout
    assert "2 experiment(s) waiting" in plan.stdout
    assert launches(project) == []
