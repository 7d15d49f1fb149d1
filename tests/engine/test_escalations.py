"""Escalations and decisions through real passes: one escalation file per open problem,
``reconcile resolve`` writes and commits a decision, the next pass applies it exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.engine.project import git, launches, make_project, reconcile, until

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default


def entry(project: Path, exp_id: str) -> dict[str, object]:
    path = project / "dispatch" / "state.json"
    if not path.exists():
        return {}
    return next((e for e in json.loads(path.read_text())["experiments"] if e["id"] == exp_id), {})


def front_matter(path: Path) -> dict[str, object]:
    text = path.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_failed_run_escalates_once_and_resolve_retry_relaunches_it_once(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1, fail=3)
    until(lambda: entry(project, "job_s0").get("status") == "failed", step=lambda: reconcile(project, "--once"))
    escalation = project / "progress" / "escalate_job_s0.md"
    meta = front_matter(escalation)
    assert meta["status"] == "open"
    assert meta["class"] == "unknown"
    assert "RuntimeError: boom" in meta["evidence"][-1]
    assert "reconcile resolve job_s0 --retry" in escalation.read_text()
    commits = git(project, "rev-list", "--count", "HEAD", "--", "progress/escalate_job_s0.md")
    for _ in range(3):  # more passes: the same problem is not escalated again
        reconcile(project, "--once")
    assert git(project, "rev-list", "--count", "HEAD", "--", "progress/escalate_job_s0.md") == commits

    out = reconcile(project, "resolve", "-C", str(project), "job_s0", "--retry", "--note", "flaky node")
    assert out.returncode == 0, out.stderr
    assert git(project, "log", "-1", "--format=%s") == "resolve: retry job_s0"
    decisions = yaml.safe_load((project / "dispatch" / "decisions.yaml").read_text())["decisions"]
    assert [(d["exp"], d["action"], d["reason"]) for d in decisions] == [("job_s0", "retry", "flaky node")]

    # attempt 1 failed, attempt 2 (its one automatic retry) failed: the decision starts attempt 3
    until(lambda: entry(project, "job_s0").get("attempt") == 3, step=lambda: reconcile(project, "--once"))
    until(lambda: entry(project, "job_s0").get("status") == "failed", step=lambda: reconcile(project, "--once"))
    for _ in range(2):
        reconcile(project, "--once")
    assert launches(project) == ["job_s0"] * 3  # the decision was applied exactly once
    state = json.loads((project / "dispatch" / "state.json").read_text())
    assert state["decisions_applied"] == [decisions[0]["id"]]
    assert front_matter(escalation)["status"] == "open"  # the new failure opened a new escalation
    history = git(project, "log", "--format=%s", "--", "progress/escalate_job_s0.md").splitlines()
    assert len(history) == 3  # opened, closed by the decision, opened again


def test_resolve_refuses_an_unknown_experiment_and_changes_nothing(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    head = git(project, "rev-parse", "HEAD")
    out = reconcile(project, "resolve", "-C", str(project), "nope_s9", "--cancel")
    assert out.returncode == 2
    assert "dispatch/decisions.yaml:" in out.stderr and "nope_s9" in out.stderr
    assert git(project, "rev-parse", "HEAD") == head
    assert not (project / "dispatch" / "decisions.yaml").exists()
