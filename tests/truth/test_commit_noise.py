"""A commit means a transition (design invariant 11, issue 14 item 5 and invariant (d)).

Counters of a silent target, a job's progress and its heartbeat change every pass; they are kept
in ``.reconciler/volatile.json`` and committed only folded into the next transition's commit, or in
at most one progress commit per ``policies.progress_commit_minutes``. Real passes throughout: the
loopback sshd of ``tests.fixtures.sshd`` stopped for a "host down", real local jobs that report
progress through ``reconciler.runtime`` (the bundle the controller ships with the code).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from reconciler.dashboard.source import SnapshotCache
from reconciler.engine import PassResult, reconcile_once
from tests.engine.project import git
from tests.engine.test_host_down import EXP, project_for
from tests.engine.test_ssh_target import killing_runs, launches
from tests.fixtures.sshd import SshdHost, wait_for
from tests.projectkit import IDENTITY

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default


def commits(project: Path) -> int:
    return int(git(project, "rev-list", "--count", "HEAD"))


def committed_entry(project: Path, exp_id: str = EXP) -> dict[str, Any]:
    """The entry as ``dispatch/state.json`` holds it at HEAD."""
    doc = json.loads(git(project, "show", "HEAD:dispatch/state.json"))
    return next(e for e in doc["experiments"] if e["id"] == exp_id)


def shown_entry(project: Path, exp_id: str = EXP) -> dict[str, Any]:
    """The entry as ``reconcile status --json`` shows it (the newest values)."""
    out = subprocess.run(
        [sys.executable, "-m", "reconciler", "status", "--json", "-C", str(project)],
        cwd=project, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode in (0, 1), out.stderr
    entries: list[dict[str, Any]] = json.loads(out.stdout)
    return next(e for e in entries if e["id"] == exp_id)


def quiet_pass(project: Path, offset: timedelta = timedelta(0)) -> PassResult:
    result = reconcile_once(project, clock=lambda: datetime.now(timezone.utc) + offset, log=lambda m: None)
    assert not result.warnings, result.warnings
    return result


# --- a target that is down ------------------------------------------------------------------


@pytest.mark.ssh
def test_a_target_down_for_ten_passes_commits_only_its_transitions(
    sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path
) -> None:
    host = sshd_hosts[0]
    project = project_for(tmp_path, host, rctest_dir, sleep=30.0)
    with killing_runs(rctest_dir):
        try:
            assert quiet_pass(project).commit is not None  # launched
            wait_for(lambda: launches(rctest_dir) == [EXP], "the job to start")
            before = commits(project)
            host.stop()
            made = [quiet_pass(project).commit is not None for _ in range(10)]
        finally:
            host.start()
    # running -> unreachable (pass 1), unreachable -> on_hold at the threshold (pass 3); no commit
    # for the eight passes that only counted misses.
    assert made == [True, False, True] + [False] * 7, made
    assert commits(project) == before + 2
    subjects = git(project, "log", "--format=%s", f"-{2}").splitlines()
    assert all("record status" not in s for s in subjects), subjects
    # HEAD holds the counters as of the on_hold commit; status shows the newest.
    assert committed_entry(project)["status"] == "on_hold"
    assert committed_entry(project)["unreachable"]["consecutive"] == 3
    assert shown_entry(project)["unreachable"]["consecutive"] == 10
    assert git(project, "status", "--porcelain") == ""


@pytest.mark.ssh
def test_a_lost_scratch_dir_restarts_the_counters_from_the_committed_values(
    sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path
) -> None:
    host = sshd_hosts[0]
    project = project_for(tmp_path, host, rctest_dir, sleep=30.0)
    with killing_runs(rctest_dir):
        try:
            quiet_pass(project)
            wait_for(lambda: launches(rctest_dir) == [EXP], "the job to start")
            host.stop()
            seen = []
            for n in range(5):
                if n == 2:  # two misses counted, one committed: .reconciler/ is lost
                    shutil.rmtree(project / ".reconciler")
                quiet_pass(project)
                seen.append((shown_entry(project)["status"], shown_entry(project)["unreachable"]["consecutive"]))
        finally:
            host.start()
    # The uncommitted second miss is forgotten: the threshold (3) comes one pass later.
    assert seen == [("unreachable", 1), ("unreachable", 2), ("unreachable", 2), ("on_hold", 3), ("on_hold", 4)], seen
    assert git(project, "status", "--porcelain") == ""


# --- a job that reports progress, and one that only beats ---------------------------------------

PROGRESS_JOB = textwrap.dedent(
    """
    import os, sys, time
    from reconciler import runtime
    if "--dry-run" in sys.argv:  # the environment check
        sys.exit(0)
    out, seconds, mode = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    step, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        step += 1
        if mode == "progress":
            runtime.set_progress(step, 1000000, loss=1.0 / step)
        else:
            runtime.update_sidecar({})  # a heartbeat: only ``updated`` moves
        time.sleep(0.05)
    runtime.write_final({"accuracy": 0.9}) if mode == "progress" else None
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".tmp", "w") as f:
        f.write("exp_id,method,dataset,group,metric,seed,value,host,gpu,finished_at\\n")
        f.write(f"{os.environ['EXP_ID']},m,d,main,accuracy,0,0.9,h,,2026-11-26T00:00:00Z\\n")
    os.replace(out + ".tmp", out)
    """
)

CONFIG = """\
version: 1
project: noisetest
targets:
  local:
    kind: local
    root: .reconciler/runs-local
    max_runs: 8
policies:
  poll_interval: 1
  progress_commit_minutes: 30
"""

DISPATCH = """\
version: 1
experiments:
  - id: {exp}
    command: python3 progress_job.py {{result_file}} {seconds} {mode}
    targets: [local]
    phase: pilot
    expected_duration_hours: 100
    group: main
    method: m
    dataset: d
"""


def progress_project(tmp_path: Path, exp: str, mode: str, seconds: float) -> Path:
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "dispatch").mkdir()
    (project / "config" / "reconciler.yaml").write_text(CONFIG)
    (project / "dispatch" / "experiments.yaml").write_text(DISPATCH.format(exp=exp, seconds=seconds, mode=mode))
    (project / "progress_job.py").write_text(PROGRESS_JOB)
    (project / ".gitignore").write_text(".reconciler/\n")
    git(project, "init", "-q", "-b", "main")
    git(project, *IDENTITY, "add", "-A")
    git(project, *IDENTITY, "commit", "-qm", "desired state")
    return project


@contextlib.contextmanager
def killing_local_runs(project: Path) -> Iterator[None]:
    try:
        yield
    finally:
        for pid_file in (project / ".reconciler" / "runs-local" / "runs").glob("*/*/pid"):
            with contextlib.suppress(ValueError, OSError):
                os.killpg(int(pid_file.read_text().strip()), signal.SIGKILL)


def sidecar_file(project: Path, exp: str) -> Path:
    return project / ".reconciler" / "runs-local" / "runs" / exp / "1" / "status.json"


def step_of(project: Path, exp: str) -> int:
    try:
        return int(json.loads(sidecar_file(project, exp).read_text()).get("step") or 0)
    except (OSError, ValueError):
        return 0


def more_progress(project: Path, exp: str) -> None:
    seen = step_of(project, exp)
    wait_for(lambda: step_of(project, exp) > seen, "more progress")


def another_heartbeat(project: Path, exp: str) -> None:
    seen = sidecar_file(project, exp).stat().st_mtime_ns
    wait_for(lambda: sidecar_file(project, exp).stat().st_mtime_ns != seen, "another heartbeat")


def test_progress_reported_every_pass_makes_one_commit_per_progress_interval(tmp_path: Path) -> None:
    exp = "prog"
    project = progress_project(tmp_path, exp, "progress", seconds=12.0)
    with killing_local_runs(project):
        _progress_then_done(project, exp)


def _progress_then_done(project: Path, exp: str) -> None:
    assert quiet_pass(project).commit is not None  # launched
    wait_for(lambda: step_of(project, exp) > 0, "the job to report progress")
    before = commits(project)
    shown: list[int] = []
    for _ in range(4):  # the job moves on between passes; nothing is committed
        more_progress(project, exp)
        assert quiet_pass(project).commit is None
        shown.append(int(shown_entry(project, exp)["sidecar"]["step"]))
    assert commits(project) == before
    assert shown == sorted(shown) and shown[-1] > shown[0], shown  # status shows the newest progress
    # So does the dashboard, whose cached snapshot of the same commit is rebuilt when they move.
    cache = SnapshotCache(project)
    assert dict(cache.get().state.by_id()[exp].sidecar)["step"] == shown[-1]
    more_progress(project, exp)
    assert quiet_pass(project).commit is None
    newer = dict(cache.get(cache.get().commit).state.by_id()[exp].sidecar)["step"]
    assert newer > shown[-1]
    assert newer == int(shown_entry(project, exp)["sidecar"]["step"])
    assert (
        "step" not in committed_entry(project, exp)["sidecar"]
        or committed_entry(project, exp)["sidecar"]["step"] < shown[-1]
    )

    # 31 minutes on: one progress commit, then none again within the interval.
    later = timedelta(minutes=31)
    progress = quiet_pass(project, later)
    assert progress.commit is not None
    assert git(project, "log", "-1", "--format=%s") == "reconcile: record progress"
    assert committed_entry(project, exp)["sidecar"]["step"] >= shown[-1]
    for _ in range(2):
        more_progress(project, exp)
        assert quiet_pass(project, later).commit is None
    assert commits(project) == before + 1

    # The run ends: the done commit folds the newest sidecar (the final metrics) in.
    deadline = time.monotonic() + 60
    while committed_entry(project, exp)["status"] != "done":
        assert time.monotonic() < deadline, "the run did not finish"
        quiet_pass(project, later)
        time.sleep(0.2)
    final = committed_entry(project, exp)["sidecar"]
    assert final["final"] == {"accuracy": 0.9}, final
    assert git(project, "status", "--porcelain") == ""
    assert not (project / ".reconciler" / "volatile.json").exists()  # nothing newer than the commit


def test_a_heartbeat_never_makes_a_commit(tmp_path: Path) -> None:
    exp = "beat"
    project = progress_project(tmp_path, exp, "beat", seconds=20.0)
    with killing_local_runs(project):
        _beats(project, exp)


def _beats(project: Path, exp: str) -> None:
    assert quiet_pass(project).commit is not None  # launched
    wait_for(lambda: sidecar_file(project, exp).exists(), "the job's first heartbeat")
    before = commits(project)
    for minutes in (0, 31, 62, 93):  # however long it beats, a heartbeat alone commits nothing
        another_heartbeat(project, exp)
        assert quiet_pass(project, timedelta(minutes=minutes)).commit is None
    assert commits(project) == before
    assert shown_entry(project, exp)["sidecar"]["updated"]  # the newest heartbeat is shown
    assert git(project, "status", "--porcelain") == ""


# --- the rule itself (pure) -------------------------------------------------------------------


def test_the_split_commits_transitions_whole_and_keeps_only_counters_back() -> None:
    from reconciler.model.status import StateFile, Status, StatusEntry, Unreachable
    from reconciler.model.volatile import merge, split

    committed = StateFile(
        project="p",
        entries=(
            StatusEntry(id="a", status=Status.UNREACHABLE, attempt=1, unreachable=Unreachable(1, 1, 1)),
            StatusEntry(id="b", status=Status.RUNNING, attempt=1),
        ),
    )
    planned = committed.with_entries(
        (
            dataclasses.replace(committed.entries[0], unreachable=Unreachable(2, 2, 2)),  # counted, no transition
            dataclasses.replace(committed.entries[1], status=Status.DONE, sidecar=(("final", 1),)),  # a transition
        )
    )
    to_commit, newest = split(committed, planned, fold_progress=False)
    assert to_commit.by_id()["a"] == committed.by_id()["a"]
    assert to_commit.by_id()["b"] == planned.by_id()["b"]  # folded: the sidecar goes with it
    counted = {"consecutive": 2, "total": 2, "probes": 2}
    assert newest == {
        "a": (
            1,
            {
                "unreachable": counted,
                "sidecar": {},
                "waiting_reason": None,
                "pid": None,
                "process": None,
                "gpu_memory": None,
            },
        )
    }
    assert merge(to_commit, newest) == planned  # the next pass counts on from 2
    assert merge(to_commit, {"a": (2, newest["a"][1])}) == to_commit  # another attempt's values: ignored
    everything, rest = split(committed, planned, fold_progress=True)
    assert everything == planned and rest == {}


def test_a_process_seen_after_its_job_started_is_no_transition() -> None:
    """A batch job runs (the scheduler said so, a committed transition) before its wrapper wrote
    its pid: the pass that first sees the process commits nothing; the pid is kept in
    ``.reconciler/`` and folded into the next transition's commit (chaos seed 20261212, index 47)."""
    from reconciler.model.status import Attempt, StateFile, Status, StatusEntry
    from reconciler.model.volatile import merge, split

    attempt = Attempt(n=1, target="pb", command="c", run_dir="/r/e/1", token="t", job_id="2.pbs")
    running = StatusEntry(id="e", status=Status.RUNNING, attempt=1, attempts=(attempt,), job_id="2.pbs")
    committed = StateFile(project="p", entries=(running,))
    seen = dataclasses.replace(
        running, pid=4242, attempts=(dataclasses.replace(attempt, pid=4242, start_time="2175650"),)
    )
    planned = committed.with_entries((seen,))
    to_commit, newest = split(committed, planned, fold_progress=False)
    assert to_commit == committed  # nothing to commit
    assert newest["e"][1]["pid"] == 4242 and newest["e"][1]["process"] == [4242, "2175650"]
    assert merge(to_commit, newest) == planned  # the next pass knows the process
    done = dataclasses.replace(seen, status=Status.DONE, pid=None)
    folded, rest = split(committed, committed.with_entries((done,)), fold_progress=False)
    assert folded.entries[0].attempts[0].pid == 4242 and rest == {}  # folded into the transition
    # A volatile file's foreign values are not taken.
    assert running.with_volatile({"pid": True, "process": [-1, 5]}) == running


def test_an_unreadable_or_foreign_volatile_file_counts_as_none(tmp_path: Path) -> None:
    from reconciler.statestore import VOLATILE, read_volatile, write_volatile

    path = tmp_path / VOLATILE
    path.parent.mkdir()
    for text in ("", "{", "[]", '{"entries": 3}'):
        path.write_text(text)
        assert read_volatile(tmp_path) == {}
    path.write_text(
        json.dumps(
            {
                "entries": {
                    "bad": {"attempt": 1, "values": {"unreachable": {"consecutive": "3"}}},
                    "worse": {"attempt": "1", "values": {}},
                    "good": {"attempt": 2, "values": {"unreachable": {"consecutive": 3}, "sidecar": {"step": 5}}},
                }
            }
        )
    )
    assert read_volatile(tmp_path) == {"good": (2, {"unreachable": {"consecutive": 3}, "sidecar": {"step": 5}})}
    write_volatile(tmp_path, {}, "now")
    assert not path.exists()  # nothing newer than the commit: no file
