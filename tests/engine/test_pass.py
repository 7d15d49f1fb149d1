"""One pass, end to end, in real processes: a real git repo, real jobs on the local target."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.lockfile import ProjectLock
from tests.engine.project import git, launches, make_project, reconcile, until


def statuses(project: Path) -> dict[str, str]:
    path = project / "dispatch" / "state.json"
    if not path.exists():
        return {}
    return {e["id"]: e["status"] for e in json.loads(path.read_text())["experiments"]}


def all_done(project: Path) -> bool:
    s = statuses(project)
    return bool(s) and all(v == "done" for v in s.values())


def test_runs_to_done_and_commits_each_transition(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    first = reconcile(project, "--once")
    assert first.returncode == 0, first.stderr
    assert "3 launched" in git(project, "log", "-1", "--format=%s")
    first_dispatch = git(project, "rev-parse", "HEAD")
    assert git(project, "rev-parse", "dispatch/pilot^{commit}") == first_dispatch
    body = git(project, "log", "-1", "--format=%b")
    assert "job_s0: new, running (attempt 1 on local pid" in body
    assert "Desired-State: " in body
    until(lambda: all_done(project), step=lambda: reconcile(project, "--once"))
    assert sorted(launches(project)) == ["job_s0", "job_s1", "job_s2"]
    for seed in range(3):
        rows = (project / f"experiments/results/job_s{seed}.csv").read_text().splitlines()
        assert rows[1].startswith(f"job_s{seed},m,d,main,accuracy,{seed},0.9")
    committed = json.loads(git(project, "show", "HEAD:dispatch/state.json"))["experiments"]
    assert [e["results"] for e in committed] == [{"accuracy": 0.9}] * 3  # the seed's field, for its dashboard
    # Every commit of the status touched only reconciler-owned paths and said what changed.
    subjects = git(project, "log", "--format=%s", "--", "dispatch/state.json").splitlines()
    assert subjects[-1].startswith("reconcile: 3 launched")
    assert any("done" in s for s in subjects)
    assert git(project, "rev-parse", "dispatch/pilot^{commit}") == first_dispatch  # only the first dispatch
    # A further pass over an unchanged world plans nothing and commits nothing.
    head = git(project, "rev-parse", "HEAD")
    again = reconcile(project, "--once")
    assert again.returncode == 0
    assert git(project, "rev-parse", "HEAD") == head
    plan = reconcile(project, "plan", "-C", str(project))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "nothing to do" in plan.stdout
    log = (project / "progress" / "lab.log").read_text().splitlines()
    assert any("job_s0: new, running (attempt 1 on local" in line for line in log)
    assert any("job_s0: running -> done" in line for line in log)
    assert all(line[:4].isdigit() and "+00:00" in line.split()[0] for line in log)


def test_log_rebuilds_transitions_from_git(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    until(lambda: all_done(project), step=lambda: reconcile(project, "--once"))
    out = reconcile(project, "log", "-C", str(project), "job_s0")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "(new) -> running" in lines[0]
    assert "running -> done" in lines[-1]


def test_uncommitted_edits_are_not_desired_state(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    spec = project / "dispatch" / "experiments.yaml"
    spec.write_text(spec.read_text().replace("seeds: [0]", "seeds: [0, 1, 2, 3]"))
    out = reconcile(project, "--once")
    assert out.returncode == 0, out.stderr
    assert "uncommitted changes will not run until committed: dispatch/experiments.yaml" in out.stderr
    assert set(statuses(project)) == {"job_s0"}
    assert "seeds: [0, 1, 2, 3]" in spec.read_text()  # the person's edit is untouched
    assert git(project, "status", "--porcelain", "--", "dispatch/experiments.yaml") == "M dispatch/experiments.yaml"


def test_second_reconcile_exits_75_naming_the_holder(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    with ProjectLock(project):
        out = reconcile(project, "--once")
    assert out.returncode == 75
    assert "another reconcile holds" in out.stderr
    import os

    assert f"pid {os.getpid()}" in out.stderr


def test_unknown_failure_is_retried_while_retries_remain_then_failed(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1, fail=3)  # max_retries: 1
    until(lambda: statuses(project).get("job_s0") == "failed", step=lambda: reconcile(project, "--once"))
    state = json.loads((project / "dispatch" / "state.json").read_text())["experiments"][0]
    assert (state["retry_count"], state["failure_class"]) == (1, "unknown")
    assert [a["exit_code"] for a in state["attempts"]] == [3, 3]
    assert "RuntimeError: boom" in state["attempts"][0]["evidence"][-1]
    assert launches(project) == ["job_s0", "job_s0"]
    assert reconcile(project, "--once").returncode == 1  # something needs a person


def test_oom_is_retried_with_remediation_then_failed(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1, flags=" --oom --batch-size 64")
    until(lambda: statuses(project).get("job_s0") == "failed", step=lambda: reconcile(project, "--once"))
    state = json.loads((project / "dispatch" / "state.json").read_text())["experiments"][0]
    assert state["retry_count"] == 1
    assert [a["failure_class"] for a in state["attempts"]] == ["cuda_oom", "cuda_oom"]
    first, second = (a["command"] for a in state["attempts"])
    assert "--batch-size 64" in first and "--accumulate-grad-batches" not in first
    assert "--batch-size 32" in second and "--accumulate-grad-batches 2" in second
    assert launches(project) == ["job_s0", "job_s0"]
    log = reconcile(project, "log", "-C", str(project), "job_s0").stdout
    assert "command changed" in log
