"""Watch mode in a real process: ``python -m reconciler -C <project>`` (no ``--once``).

Each test starts the watcher as a subprocess on a real project (``tests.engine.project``) and
reads only what a person would see: ``dispatch/state.json`` in the work tree, the git history and
the lock file ``.reconciler/lock`` (its holder text is there exactly while a pass runs). Waits poll
with a deadline; no test sleeps a fixed time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from reconciler.lockfile import LOCK_RELPATH, ProjectLock
from tests.engine.project import git, make_project
from tests.projectkit import IDENTITY

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

POLL = 0.01


def statuses(project: Path) -> dict[str, str]:
    """The work tree's ``dispatch/state.json`` (written atomically by the watcher)."""
    path = project / "dispatch" / "state.json"
    try:
        return {e["id"]: e["status"] for e in json.loads(path.read_text())["experiments"]}
    except (OSError, ValueError):
        return {}


def all_done(project: Path, n: int = 3) -> bool:
    s = statuses(project)
    return len(s) == n and all(v == "done" for v in s.values())


def pass_running(project: Path) -> bool:
    """True while a pass holds the project lock (the holder writes itself into the file)."""
    try:
        return bool((project / LOCK_RELPATH).read_text().strip())
    except OSError:
        return False


def wait(predicate: Callable[[], bool], what: str, deadline: float = 20.0) -> float:
    """Poll ``predicate`` until it holds; returns the seconds it took; fails after ``deadline``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > deadline:
            raise AssertionError(f"timed out after {deadline} s waiting for {what}")
        time.sleep(POLL)
    return time.monotonic() - start


def commit(project: Path, relpath: str, text: str, message: str) -> None:
    """Commit one file as a person would (``git commit -- path``), retrying while the watcher
    briefly holds the index lock."""
    (project / relpath).write_text(text)
    end = time.monotonic() + 10
    while True:
        done = subprocess.run(
            ["git", *IDENTITY, "commit", "-q", "-m", message, "--", relpath],
            cwd=project, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode == 0:
            return
        if "index.lock" not in done.stderr or time.monotonic() > end:
            raise AssertionError(f"git commit failed: {done.stderr}")
        time.sleep(POLL)


def set_poll_interval(project: Path, seconds: int) -> None:
    config = (project / "config" / "reconciler.yaml").read_text()
    commit(project, "config/reconciler.yaml", config.replace("poll_interval: 1", f"poll_interval: {seconds}"), "poll")


def add_seed(project: Path, seeds: Sequence[int]) -> None:
    spec = project / "dispatch" / "experiments.yaml"
    text = spec.read_text()
    old = f"seeds: {list(range(len(seeds) - 1))}"
    assert old in text
    commit(project, "dispatch/experiments.yaml", text.replace(old, f"seeds: {list(seeds)}"), "add a seed")


def settled(project: Path) -> bool:
    """No pass running and the work tree's state committed (the watcher is idle)."""
    if pass_running(project) or not (project / "dispatch" / "state.json").exists():
        return False
    return git(project, "status", "--porcelain", "--", "dispatch/state.json") == ""


class Watcher:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, deadline: float = 15.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"watcher still running {deadline} s after SIGTERM:\n{self.output()}") from None


@contextmanager
def watching(projects: Sequence[Path], tmp_path: Path) -> Iterator[Watcher]:
    log = tmp_path / "watcher.log"
    args = [a for p in projects for a in ("-C", str(p))]
    env = {**os.environ, "LAUNCH_LOG": str(tmp_path / "launches.log"), "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", *args],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    watcher = Watcher(proc, log)
    try:
        yield watcher
    except BaseException:
        print(watcher.output(), file=sys.stderr)
        raise
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def launches(tmp_path: Path) -> list[str]:
    path = tmp_path / "launches.log"
    return path.read_text().split() if path.exists() else []


def test_commit_starts_a_pass_within_two_seconds_and_sigterm_releases_the_lock(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    set_poll_interval(project, 30)  # only the commit can start the second pass
    with watching([project], tmp_path) as watcher:
        wait(lambda: len(statuses(project)) == 3 and settled(project), "the first pass")
        assert "3 launched" in git(project, "log", "-1", "--format=%s")
        add_seed(project, [0, 1, 2, 3])
        committed = time.monotonic()
        wait(lambda: statuses(project).get("job_s3") in ("running", "done"), "job_s3 launched", deadline=10)
        latency = time.monotonic() - committed
        print(f"\ncommit -> job_s3 launched in dispatch/state.json: {latency:.2f} s")
        assert latency < 2.0, f"the commit's pass took {latency:.2f} s to launch job_s3"
        wait(lambda: settled(project), "the pass to commit")
        assert "job_s3" in git(project, "show", "HEAD:dispatch/state.json")
        assert watcher.terminate() == 0
        assert "stopping after the current pass" in watcher.output()
    with ProjectLock(project):
        pass
    assert sorted(launches(tmp_path)) == ["job_s0", "job_s1", "job_s2", "job_s3"]


def test_sigterm_mid_pass_finishes_the_pass_then_exits_zero(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    with watching([project], tmp_path) as watcher:
        wait(lambda: pass_running(project), "the first pass to take the lock")
        assert watcher.terminate() == 0
        assert "stopping after the current pass" in watcher.output()
        assert not pass_running(project)
    with ProjectLock(project):  # released: acquirable at once
        pass
    # The interrupted pass still recorded and committed what it launched.
    assert set(statuses(project)) == {"job_s0", "job_s1", "job_s2"}
    assert git(project, "status", "--porcelain", "--", "dispatch/state.json") == ""
    # A run is recorded once its wrapper wrote its pid; the job's own launch line may come a moment later.
    wait(lambda: len(launches(tmp_path)) >= 3, "the three jobs to log their start")
    assert sorted(launches(tmp_path)) == ["job_s0", "job_s1", "job_s2"]


def test_commit_made_during_a_pass_is_not_lost(tmp_path: Path) -> None:
    """A desired-state commit that lands while a pass runs (its status commit then loses the
    compare-and-swap) starts another pass at once, not a poll interval later."""
    project = make_project(tmp_path)
    set_poll_interval(project, 30)
    with watching([project], tmp_path) as watcher:
        wait(lambda: pass_running(project), "the first pass to take the lock")
        add_seed(project, [0, 1, 2, 3])
        took = wait(lambda: statuses(project).get("job_s3") in ("running", "done"), "job_s3 launched", deadline=10)
        print(f"\ncommit during a pass -> job_s3 launched after {took:.2f} s")
        wait(lambda: settled(project), "the pass to commit")
        assert watcher.terminate() == 0
    assert sorted(launches(tmp_path)) == ["job_s0", "job_s1", "job_s2", "job_s3"]


def test_one_watcher_serves_two_projects(tmp_path: Path) -> None:
    a = make_project(tmp_path / "a")
    b = make_project(tmp_path / "b", seeds=2)
    with watching([a, b], tmp_path) as watcher:
        wait(lambda: all_done(a, 3) and all_done(b, 2), "both projects done", deadline=25)
        wait(lambda: settled(a) and settled(b), "both passes to commit")
        assert watcher.terminate() == 0
    for project, n in ((a, 3), (b, 2)):
        assert (project / "experiments" / "results" / "job_s0.csv").exists()
        subjects = git(project, "log", "--format=%s", "--", "dispatch/state.json").splitlines()
        assert subjects[-1].startswith(f"reconcile: {n} launched")
    assert sorted(launches(tmp_path)) == sorted(["job_s0", "job_s1", "job_s2", "job_s0", "job_s1"])


def test_no_busy_loop_on_its_own_status_commits(tmp_path: Path) -> None:
    """Once everything is done, passes go on every poll interval, commit nothing, and the
    watcher's own commits do not wake it into back-to-back passes."""
    project = make_project(tmp_path)
    with watching([project], tmp_path) as watcher:
        wait(lambda: all_done(project) and settled(project), "all done")
        head = git(project, "rev-parse", "HEAD")
        # Watch four more passes through the lock file: each is "held" then "released".
        gaps: list[float] = []
        released_at: float | None = None
        end = time.monotonic() + 25
        while len(gaps) < 4:
            assert time.monotonic() < end, "fewer than four passes in 25 s"
            if pass_running(project):
                if released_at is not None:
                    gaps.append(time.monotonic() - released_at)
                wait(lambda: not pass_running(project), "the pass to end")
                released_at = time.monotonic()
            time.sleep(POLL)
        print(f"\nidle gaps between passes: {', '.join(f'{g:.2f}' for g in gaps)} s (poll_interval 1 s)")
        assert git(project, "rev-parse", "HEAD") == head, "an idle pass committed"
        # poll_interval is 1 s: a pass that follows the previous one at once is a wake-up loop.
        assert min(gaps) > 0.5, gaps
        assert watcher.terminate() == 0
    assert sorted(launches(tmp_path)) == ["job_s0", "job_s1", "job_s2"]
