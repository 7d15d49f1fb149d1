"""Environment readiness and stage gates through real passes on local targets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.engine.project import CONFIG, git, launches, make_project, newest_entries, reconcile, until

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

TWO_TARGETS = CONFIG.replace(
    """  local:
    kind: local
    root: .reconciler/runs-local
    max_runs: 8
""",
    """  bad:
    kind: local
    root: .reconciler/runs-bad
    env: {variables: {FAIL_IMPORT: "1"}}
  good:
    kind: local
    root: .reconciler/runs-good
""",
)
assert "bad:" in TWO_TARGETS
TWO_TARGETS += "  env_check: {command: 'python3 job.py --dry-run'}\n"  # imports what the jobs import


def commit_all(project: Path, message: str) -> None:
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "add", "-A")
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", message)


def state(project: Path) -> dict[str, dict[str, object]]:
    return newest_entries(project)


def test_env_failure_on_one_target_sends_its_experiments_to_the_other(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=4)
    (project / "config" / "reconciler.yaml").write_text(TWO_TARGETS)
    job = project / "job.py"
    job.write_text("import os\nif os.environ.get('FAIL_IMPORT'):\n    import missing_pkg  # noqa\n" + job.read_text())
    spec = project / "dispatch" / "experiments.yaml"
    spec.write_text(spec.read_text().replace("targets: [local]", "targets: [bad, good]"))
    commit_all(project, "two targets, one with a broken environment")

    first = reconcile(project, "--once")
    assert first.returncode == 1, first.stderr  # a failed environment needs a person
    verdict = json.loads((project / "progress" / "env_bad.json").read_text())
    assert verdict["status"] == "ENV_FAILED"
    assert any("No module named 'missing_pkg'" in line for line in verdict["evidence"])
    assert json.loads((project / "progress" / "env_good.json").read_text())["status"] == "ENV_READY"
    assert "env bad failed" in git(project, "log", "-1", "--format=%s")
    waiting = [e["waiting_reason"] for e in state(project).values() if e["status"] == "pending"]
    assert waiting and all("bad env failed" in (w or "") for w in waiting)

    def all_done() -> bool:
        s = state(project)
        return len(s) == 4 and all(e["status"] == "done" for e in s.values())

    until(all_done, step=lambda: reconcile(project, "--once"))
    assert {e["target"] for e in state(project).values()} == {"good"}
    assert sorted(launches(project)) == [f"job_s{i}" for i in range(4)]


STAGED = """\
version: 1
defaults:
  phase: pilot
  expected_duration_hours: 0.01
  targets: [local]
  max_retries: 0
  group: main
  method: m
  dataset: d
experiments:
  - id: first
    stage: 1
    command: python3 job.py --exp {exp_id} --out {result_file} --fail 3
  - id: second
    stage: 2
    command: python3 job.py --exp {exp_id} --out {result_file}
"""


def test_failed_stage_holds_the_next_until_approved(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    (project / "dispatch" / "experiments.yaml").write_text(STAGED)
    commit_all(project, "two stages")
    until(lambda: state(project).get("first", {}).get("status") == "failed", step=lambda: reconcile(project, "--once"))
    for _ in range(2):
        reconcile(project, "--once")
    second = state(project)["second"]
    assert second["status"] == "pending"
    assert second["waiting_reason"] == "stage 1 has 1 failed or held experiment(s); approve stage 2 to go on"
    assert launches(project) == ["first"]
    plan = reconcile(project, "plan", "-C", str(project))
    assert "second: waiting: stage 1 has 1 failed" in plan.stdout
    escalation = (project / "progress" / "escalate_first.md").read_text()
    assert "stage 2 waits for this stage: `reconcile resolve --approve-stage 2` releases it" in escalation

    (project / "dispatch" / "decisions.yaml").write_text(
        "version: 1\ndecisions:\n  - {id: go-on, action: approve_stage, stage: 2, reason: baseline known broken}\n"
    )
    commit_all(project, "approve stage 2")
    until(lambda: state(project)["second"]["status"] == "done", step=lambda: reconcile(project, "--once"))
    assert launches(project) == ["first", "second"]
    recorded = json.loads((project / "dispatch" / "state.json").read_text())
    assert recorded["stages_approved"] == [2]
    assert recorded["decisions_applied"] == ["go-on"]
