"""A host that comes back (issue 14 item 4): the runs it held for silence take their real state.

A run whose target stopped answering goes ``unreachable``, then ``on_hold`` with an escalation
(three consecutive misses). When the probe answers again, that hold is lifted: the run is
``running`` again, or collected / failed if it ended meanwhile, and the escalation is closed with
a note; nobody has to decide anything. A hold for any other reason (here the duration guard) is
not lifted by the host coming back.

Real passes over the real loopback sshd of ``tests.fixtures.sshd``, with ``test_host_down``'s
project (one ``ssh`` target, ``poll_interval`` 60 s so that only the consecutive-miss rule holds).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine.project import git
from tests.engine.test_host_down import (
    ESCALATION,
    EXP,
    commits_of,
    entry,
    front_matter,
    hold_while_down,
    pid_of,
    project_for,
    run_dirs,
)
from tests.engine.test_ssh_target import killing_runs, launches, passes_until, run_pass
from tests.fixtures.sshd import SshdHost, process_alive, wait_for

pytestmark = pytest.mark.ssh


def status_exit(project: Path) -> int:
    out = subprocess.run(
        [sys.executable, "-m", "reconciler", "status", "-C", str(project)],
        cwd=project, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return out.returncode


def hold_for_silence(project: Path, host: SshdHost) -> None:
    """Three passes with sshd down: unreachable, unreachable, on_hold (sshd stays down)."""
    host.stop()
    seen = []
    for _ in range(3):
        run_pass(project)
        seen.append(entry(project)["status"])
    assert seen == ["unreachable", "unreachable", "on_hold"], seen
    assert front_matter(project)["kind"] == "on_hold" and front_matter(project)["status"] == "open"


def test_a_run_held_for_silence_runs_again_when_its_host_answers(
    sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path
) -> None:
    host = sshd_hosts[0]
    project = project_for(tmp_path, host, rctest_dir, sleep=15.0)
    with killing_runs(rctest_dir):
        try:
            pid = hold_while_down(project, host, rctest_dir)
        finally:
            host.start()
        opened = commits_of(project, ESCALATION)
        assert status_exit(project) == 1  # on hold: a person would be asked

        back = run_pass(project)
        assert not back.unreachable, back.unreachable
        record = entry(project)
        assert record["status"] == "running", record
        assert record["unreachable"]["consecutive"] == 0 and record["unreachable"]["total"] == 5
        assert "hold lifted: the target answers again" in record["notes"]
        meta = front_matter(project)
        assert meta["status"] == "closed" and "answers again" in meta["resolution"], meta
        assert commits_of(project, ESCALATION) == opened + 1  # closed once, in that pass's commit
        assert "1 back" in git(project, "log", "-1", "--format=%s")
        assert status_exit(project) == 0  # nothing needs a person any more
        assert process_alive(pid)

        passes_until(project, lambda s: s[EXP] == "done", deadline=40.0)
    final = entry(project)
    assert (final["attempt"], final["retry_count"], final["status"]) == (1, 0, "done")
    assert launches(rctest_dir) == [EXP] and run_dirs(rctest_dir) == ["1"]  # never relaunched
    assert (project / f"experiments/results/{EXP}.csv").exists()
    assert git(project, "status", "--porcelain") == ""


def test_a_run_that_ended_while_its_host_was_down_is_collected_when_it_answers(
    sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path
) -> None:
    host = sshd_hosts[0]
    project = project_for(tmp_path, host, rctest_dir, sleep=4.0)
    with killing_runs(rctest_dir):
        try:
            run_pass(project)
            assert entry(project)["status"] == "running"
            wait_for(lambda: launches(rctest_dir) == [EXP], "the job to start")
            pid = pid_of(rctest_dir, 1)
            hold_for_silence(project, host)
            wait_for(lambda: not process_alive(pid), "the job to end while nobody sees it", attempts=200)
        finally:
            host.start()
        run_pass(project)
        record = entry(project)
        assert record["status"] == "done", record
        assert front_matter(project)["status"] == "closed"
    assert launches(rctest_dir) == [EXP]
    assert (project / f"experiments/results/{EXP}.csv").exists()
    assert status_exit(project) == 0


def test_a_hold_for_another_reason_stays_when_the_host_comes_back(
    sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path
) -> None:
    host = sshd_hosts[0]
    project = project_for(tmp_path, host, rctest_dir, sleep=40.0)
    spec = project / "dispatch" / "experiments.yaml"
    spec.write_text(spec.read_text().replace("expected_duration_hours: 0.01", "expected_duration_hours: 0.0005"))
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "a 2 s experiment")
    with killing_runs(rctest_dir):
        try:
            run_pass(project)
            wait_for(lambda: launches(rctest_dir) == [EXP], "the job to start")
            passes_until(project, lambda s: s[EXP] == "on_hold", deadline=30.0)  # 3x 1.8 s: the duration guard
            held = front_matter(project)
            assert (held["kind"], held["status"]) == ("timeout", "open"), held
            host.stop()
            for _ in range(2):
                run_pass(project)
                assert entry(project)["status"] == "on_hold"
        finally:
            host.start()
        for _ in range(2):
            run_pass(project)
            assert entry(project)["status"] == "on_hold"
        meta = front_matter(project)
        assert (meta["kind"], meta["status"]) == ("timeout", "open"), meta
        assert process_alive(pid_of(rctest_dir, 1))  # held, not killed (kill_on_hold is off)
