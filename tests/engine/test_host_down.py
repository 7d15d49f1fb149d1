"""A host that stays down: its runs go ``unreachable``, then ``on_hold`` with one escalation; when
the host is back the hold for silence is lifted (the escalation closed), and a person's decision
(``reconcile resolve``) taken meanwhile is carried out once the host answers.

Real passes (in-process ``reconcile_once``) over the real loopback sshd of
``tests.fixtures.sshd``; the project is ``test_ssh_target``'s (one ``ssh`` target, a job that
appends to a launch log on the target each time it really starts). ``poll_interval`` is raised to
60 s so that the probe count the unreachable ratio uses (``outcomes.silent`` counts one probe per
poll interval since the run started) stays the number of passes: only the consecutive-misses rule
(3) can put the run on hold here, as on a real host that is down for three polls.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.engine import PassResult
from tests.engine.project import git
from tests.engine.test_ssh_target import killing_runs, launches, make_ssh_project, passes_until, run_pass
from tests.fixtures.sshd import SshdHost, process_alive, wait_for

pytestmark = pytest.mark.ssh

EXP = "job_s0"
ESCALATION = f"progress/escalate_{EXP}.md"


def project_for(tmp_path: Path, host: SshdHost, remote_dir: Path, sleep: float) -> Path:
    project = make_ssh_project(tmp_path, host, remote_dir, seeds=1, sleep=sleep)
    config = project / "config" / "reconciler.yaml"
    text = config.read_text()
    assert "  poll_interval: 1\n" in text
    config.write_text(text.replace("  poll_interval: 1\n", "  poll_interval: 60\n"))
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "poll every minute")
    return project


def state(project: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((project / "dispatch" / "state.json").read_text())
    return loaded


def entry(project: Path) -> dict[str, Any]:
    return next(e for e in state(project)["experiments"] if e["id"] == EXP)


def front_matter(project: Path) -> dict[str, Any]:
    text = (project / ESCALATION).read_text()
    assert text.startswith("---\n")
    meta: dict[str, Any] = yaml.safe_load(text.split("---\n")[1])
    return meta


def commits_of(project: Path, path: str) -> int:
    return int(git(project, "rev-list", "--count", "HEAD", "--", path))


def run_dirs(remote_dir: Path) -> list[str]:
    base = remote_dir / "runs" / "runs" / EXP
    return sorted(p.name for p in base.iterdir()) if base.exists() else []


def pid_of(remote_dir: Path, attempt: int) -> int:
    return int((remote_dir / "runs" / "runs" / EXP / str(attempt) / "pid").read_text().strip())


def resolve(project: Path, flag: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "reconciler", "resolve", "-C", str(project), EXP, flag],
        cwd=project, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    decisions = yaml.safe_load((project / "dispatch" / "decisions.yaml").read_text())["decisions"]
    assert git(project, "log", "-1", "--format=%s") == f"resolve: {flag.lstrip('-')} {EXP}"
    assert git(project, "status", "--porcelain", "--", "dispatch/decisions.yaml") == ""  # committed
    return str(decisions[-1]["id"])


def hold_while_down(project: Path, host: SshdHost, remote_dir: Path) -> int:
    """Launch, take sshd down for three passes (unreachable, unreachable, on_hold) and two more;
    returns the pid of attempt 1. sshd is down on return."""
    first = run_pass(project)
    assert not first.unreachable, first.unreachable
    assert entry(project)["status"] == "running"
    wait_for(lambda: launches(remote_dir) == [EXP], "the job to start")
    pid = pid_of(remote_dir, 1)
    assert process_alive(pid)

    host.stop()
    seen: list[str] = []
    results: list[PassResult] = []
    for _ in range(3):
        results.append(run_pass(project))
        seen.append(entry(project)["status"])
    assert seen == ["unreachable", "unreachable", "on_hold"], seen
    assert all("gpu1" in r.unreachable for r in results)
    held = entry(project)
    assert held["unreachable"]["consecutive"] == 3, held["unreachable"]
    assert held["attempt"] == 1 and held["retry_count"] == 0
    meta = front_matter(project)
    assert (meta["status"], meta["kind"], meta["exp_id"]) == ("open", "on_hold", EXP), meta
    assert "3 consecutive" in meta["reason"]
    assert sorted(p.name for p in (project / "progress").glob("escalate_*.md")) == [f"escalate_{EXP}.md"]
    escalated = commits_of(project, ESCALATION)
    assert escalated == 1
    text = (project / ESCALATION).read_text()

    for _ in range(2):  # still down: no second escalation, the file is not rewritten
        run_pass(project)
        assert entry(project)["status"] == "on_hold"
    assert commits_of(project, ESCALATION) == escalated
    assert (project / ESCALATION).read_text() == text
    assert git(project, "status", "--porcelain") == ""
    assert launches(remote_dir) == [EXP] and run_dirs(remote_dir) == ["1"]  # nothing relaunched
    assert process_alive(pid)  # the run went on while nobody could see it
    return pid


def test_host_down_holds_the_run_once_and_resolve_retry_relaunches_it_once(
    sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path
) -> None:
    host = sshd_hosts[0]
    project = project_for(tmp_path, host, rctest_dir, sleep=20.0)
    with killing_runs(rctest_dir):
        try:
            pid = hold_while_down(project, host, rctest_dir)
        finally:
            host.start()
        escalated = commits_of(project, ESCALATION)

        # Back up: the hold for silence is lifted (the run's own state wins), its escalation closed.
        for _ in range(2):
            back = run_pass(project)
            assert not back.unreachable, back.unreachable
            assert entry(project)["status"] == "running"
        assert entry(project)["unreachable"]["consecutive"] == 0
        assert front_matter(project)["status"] == "closed"
        assert commits_of(project, ESCALATION) == escalated + 1
        assert launches(rctest_dir) == [EXP] and process_alive(pid)

        decision = resolve(project, "--retry")
        passes_until(project, lambda s: entry(project)["attempt"] == 2, deadline=20.0)
        wait_for(lambda: not process_alive(pid), "attempt 1 to be killed", attempts=100)
        wait_for(lambda: len(launches(rctest_dir)) == 2, "attempt 2 to start")
        assert entry(project)["status"] == "running"
        for _ in range(3):  # later passes apply the decision no more
            run_pass(project)
            assert entry(project)["status"] == "running"
        assert launches(rctest_dir) == [EXP, EXP]
        assert run_dirs(rctest_dir) == ["1", "2"]
        assert process_alive(pid_of(rctest_dir, 2))
        final = state(project)
        record = entry(project)
        assert final["decisions_applied"] == [decision]
        assert (record["attempt"], record["retry_count"], record["manual_retries"]) == (2, 0, 1)
        assert record["attempts"][0]["failure_class"] == "killed"
        assert record["attempts"][0]["finished"] is not None
        assert decision in record["notes"]
        meta = front_matter(project)
        assert meta["status"] == "closed", meta
        assert "the target answers again" in meta["resolution"]
        assert commits_of(project, ESCALATION) == escalated + 1  # opened once, closed once
        assert git(project, "status", "--porcelain") == ""


def test_host_down_then_back_lets_the_surviving_run_finish(
    sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path
) -> None:
    host = sshd_hosts[0]
    project = project_for(tmp_path, host, rctest_dir, sleep=8.0)
    with killing_runs(rctest_dir):
        try:
            pid = hold_while_down(project, host, rctest_dir)
        finally:
            host.start()
        back = run_pass(project)
        assert not back.unreachable and entry(project)["status"] == "running"  # no decision needed
        assert process_alive(pid)  # the process survived the outage
        meta = front_matter(project)
        assert meta["status"] == "closed" and "the target answers again" in meta["resolution"], meta

        decision = resolve(project, "--continue")  # still allowed: it turns the duration guards off
        run_pass(project)
        assert entry(project)["status"] in {"running", "done"}, entry(project)["status"]
        assert state(project)["decisions_applied"] == [decision]
        passes_until(project, lambda s: s[EXP] == "done", deadline=25.0)
    record = entry(project)
    assert (record["attempt"], record["retry_count"], record["status"]) == (1, 0, "done")
    assert launches(rctest_dir) == [EXP] and run_dirs(rctest_dir) == ["1"]  # never relaunched
    assert state(project)["decisions_applied"] == [decision]
    assert (project / f"experiments/results/{EXP}.csv").exists()
    assert front_matter(project)["status"] == "closed"
    assert git(project, "status", "--porcelain") == ""


def test_resolve_retry_while_the_host_is_still_down_is_carried_out_once_it_is_back(
    sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path
) -> None:
    host = sshd_hosts[0]
    project = project_for(tmp_path, host, rctest_dir, sleep=20.0)
    with killing_runs(rctest_dir):
        try:
            pid = hold_while_down(project, host, rctest_dir)
            decision = resolve(project, "--retry")
            for _ in range(2):  # the kill cannot reach the host: the decision must wait for it
                run_pass(project)
                assert entry(project)["status"] == "on_hold"
        finally:
            host.start()
        for _ in range(4):
            run_pass(project)
        assert not process_alive(pid)
        assert entry(project)["attempt"] == 2, entry(project)
        assert launches(rctest_dir) == [EXP, EXP]
        assert state(project)["decisions_applied"] == [decision]
        assert front_matter(project)["status"] == "closed"
