"""Archived phases end to end (issue 20): real passes, a real git repository, real jobs.

A phase whose experiments all ended moves out of ``dispatch/state.json`` into
``dispatch/archive/<phase>.json`` in the pass's commit; an idle pass then reads no archive file;
a spec change or a decision brings the phase back; a pass killed between the two writes loses
nothing and launches nothing twice; a lost or linked archive never makes a run start again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from reconciler.crashpoints import CRASH_EXIT_CODE
from tests.engine.project import git, launches, make_project, reconcile, until


def archiving(tmp_path: Path, seeds: int = 3) -> Path:
    project = make_project(tmp_path, seeds=seeds)
    config = project / "config" / "reconciler.yaml"
    config.write_text(
        config.read_text().replace("  poll_interval: 1\n", "  poll_interval: 1\n  archive_after_hours: 0\n")
    )
    git(project, "commit", "-qam", "archive at once")
    return project


def state(project: Path) -> dict[str, Any]:
    return json.loads((project / "dispatch" / "state.json").read_text())


def archived(project: Path, phase: str = "pilot") -> dict[str, str]:
    path = project / "dispatch" / "archive" / f"{phase}.json"
    if not path.exists():
        return {}
    return {e["id"]: e["status"] for e in json.loads(path.read_text())["experiments"]}


def to_archive(project: Path) -> None:
    until(lambda: len(archived(project)) >= 3, step=lambda: reconcile(project, "--once"))


def test_an_ended_phase_moves_out_and_a_new_seed_brings_it_back_without_a_relaunch(tmp_path: Path) -> None:
    project = archiving(tmp_path)
    to_archive(project)
    doc = state(project)
    assert doc["experiments"] == []
    assert doc["archived"]["pilot"]["counts"] == {"done": 3}
    assert doc["archived"]["pilot"]["file"] == "dispatch/archive/pilot.json"
    assert archived(project) == {"job_s0": "done", "job_s1": "done", "job_s2": "done"}
    assert git(project, "status", "--porcelain", "dispatch") == ""  # committed
    assert "archived (3 experiments)" in git(project, "log", "-1", "--format=%b")
    assert "phase pilot: archived (3 experiments)" in (project / "progress" / "lab.log").read_text()
    # idle: no commit, nothing launched again
    head = git(project, "rev-parse", "HEAD")
    assert reconcile(project, "--once").returncode == 0
    assert git(project, "rev-parse", "HEAD") == head and sorted(launches(project)) == ["job_s0", "job_s1", "job_s2"]
    # what people read still sees them
    status = reconcile(project, "status", "-C", str(project))
    assert "+ 3 archived in 1 phase (3 done): --archived lists them" in status.stdout
    listed = reconcile(project, "status", "-C", str(project), "--archived", "--json")
    assert sorted(e["id"] for e in json.loads(listed.stdout)) == ["job_s0", "job_s1", "job_s2"]
    one = reconcile(project, "status", "-C", str(project), "job_s1", "--json")
    assert [e["status"] for e in json.loads(one.stdout)] == ["done"]
    log = reconcile(project, "log", "-C", str(project), "job_s0")
    assert "running -> done" in log.stdout and "removed" not in log.stdout
    waited = reconcile(project, "wait", "-C", str(project), "job_s*", "--timeout", "5")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    exported = reconcile(project, "export", "-C", str(project))
    assert exported.returncode == 0, exported.stderr
    rows = (project / "experiments" / "results" / "all_results.csv").read_text()
    assert all(f"job_s{i}," in rows for i in range(3))

    # a seed added to the archived phase: the phase comes back, only the new seed runs
    dispatch = project / "dispatch" / "experiments.yaml"
    dispatch.write_text(dispatch.read_text().replace("seeds: [0, 1, 2]", "seeds: [0, 1, 2, 3]"))
    git(project, "commit", "-qam", "seed 3")
    until(lambda: len(archived(project)) == 4, step=lambda: reconcile(project, "--once"))
    assert sorted(launches(project)) == ["job_s0", "job_s1", "job_s2", "job_s3"]
    assert state(project)["archived"]["pilot"]["counts"] == {"done": 4}
    lab = (project / "progress" / "lab.log").read_text()
    assert "phase pilot: brought back from the archive (3 experiments): its specs or the policies changed" in lab
    assert "job_s0: new" not in lab.split("brought back")[1]  # not a new experiment
    log = reconcile(project, "log", "-C", str(project), "job_s0")
    assert log.stdout.count("->") == 2, log.stdout  # new -> running -> done, nothing more


def test_a_decision_about_an_archived_experiment_is_carried_out_once(tmp_path: Path) -> None:
    project = archiving(tmp_path, seeds=1)
    until(lambda: len(archived(project)) == 1, step=lambda: reconcile(project, "--once"))
    out = reconcile(project, "resolve", "-C", str(project), "job_s0", "--retry", "--note", "rerun it")
    assert out.returncode == 0, out.stderr
    until(
        lambda: archived(project) == {"job_s0": "done"} and len(launches(project)) == 2,
        step=lambda: reconcile(project, "--once"),
    )
    for _ in range(2):
        reconcile(project, "--once")
    assert launches(project) == ["job_s0", "job_s0"]
    assert len(state(project)["decisions_applied"]) == 1
    entry = json.loads((project / "dispatch" / "archive" / "pilot.json").read_text())["experiments"][0]
    assert entry["attempt"] == 2


def test_a_pass_killed_between_the_archive_and_the_state_file_loses_nothing(tmp_path: Path) -> None:
    project = archiving(tmp_path)
    crash = {"RECONCILER_CRASH_AT": "after_archive_write"}
    for _ in range(40):  # the pass that archives the phase is killed once its file is written
        if reconcile(project, "--once", env=crash).returncode == CRASH_EXIT_CODE:
            break
    else:
        raise AssertionError("no pass reached the archive write")
    assert archived(project) == {"job_s0": "done", "job_s1": "done", "job_s2": "done"}
    assert "archived" not in state(project) and len(state(project)["experiments"]) == 3  # both places
    for _ in range(2):
        assert reconcile(project, "--once").returncode == 0
    assert state(project)["experiments"] == []
    assert state(project)["archived"]["pilot"]["counts"] == {"done": 3}
    assert archived(project) == {"job_s0": "done", "job_s1": "done", "job_s2": "done"}
    assert git(project, "status", "--porcelain", "dispatch") == ""
    assert sorted(launches(project)) == ["job_s0", "job_s1", "job_s2"]


def test_a_lost_archive_keeps_its_experiments_archived_and_a_linked_one_is_refused(tmp_path: Path) -> None:
    project = archiving(tmp_path)
    to_archive(project)
    # a commit that deletes the archive, then a spec change that needs the phase back
    git(project, "rm", "-q", "dispatch/archive/pilot.json")
    dispatch = project / "dispatch" / "experiments.yaml"
    dispatch.write_text(dispatch.read_text().replace("dataset: d", "dataset: d2"))
    git(project, "commit", "-qam", "lose the archive, change the spec")
    out = reconcile(project, "--once")
    assert "archived phase 'pilot' is needed back" in out.stderr and "stay archived" in out.stderr
    assert sorted(launches(project)) == ["job_s0", "job_s1", "job_s2"]  # nothing starts again
    assert state(project)["experiments"] == []
    # the archive dir as a link out of the project: refused before anything is written
    outside = tmp_path / "outside"
    outside.mkdir()
    if (project / "dispatch" / "archive").exists():
        (project / "dispatch" / "archive").rmdir()
    os.symlink(outside, project / "dispatch" / "archive")
    refused = reconcile(project, "--once")
    assert refused.returncode == 2, refused.stderr
    assert "dispatch/archive" in refused.stderr
    assert list(outside.iterdir()) == []


def test_results_of_a_phase_archived_by_a_pass_that_could_not_commit_are_committed_next(tmp_path: Path) -> None:
    """The archiving pass wrote the archive and the state file, then its lab.log write failed (a
    full disk): nothing was committed. The next pass finds the entries archived only in the working
    tree and commits their results, notes and the archive with them."""
    project = archiving(tmp_path)
    full = {"RECONCILER_FAIL_WRITE": "progress/lab.log"}
    until(lambda: len(archived(project)) == 3, step=lambda: reconcile(project, "--once", env=full))
    assert git(project, "status", "--porcelain", "dispatch/archive") != ""  # written, not committed
    assert reconcile(project, "--once").returncode == 0
    assert git(project, "status", "--porcelain") == ""
    for i in range(3):
        git(project, "cat-file", "-e", f"HEAD:experiments/results/job_s{i}.csv")
    assert git(project, "show", "HEAD:dispatch/archive/pilot.json").count('"id": "job_s') == 3
