"""Whole passes against an ``ssh`` target: the real loopback sshd of ``tests.fixtures.sshd``.

The project (``tests.engine.project``'s job script) has one ``ssh`` target on the first sshd host,
logging in as ``rctest`` with the fixture's key and known_hosts; the target root is relative
(resolved against rctest's ``$HOME``) inside a fresh dir that ``rctest_dir`` removes. The job runs
as rctest under sshd and does not see this process's environment, so the dispatch file passes
``LAUNCH_LOG`` explicitly (a file in that dir). Passes run in-process (``reconcile_once``) so the
test can count each pass's remote commands (``Runners.commands``) and each probe's.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reconciler.backends.shell import ShellRunner
from reconciler.engine import PassResult, reconcile_once
from reconciler.model.observed import TargetObservation
from reconciler.targets import Runners
from tests.engine.project import JOB, dispatch, git
from tests.fixtures.sshd import SshdHost
from tests.projectkit import commit_project

pytestmark = pytest.mark.ssh


def config(host: SshdHost, root: str) -> str:
    return f"""\
version: 1
project: sshtest
targets:
  gpu1:
    kind: ssh
    host: {host.address}
    port: {host.port}
    user: {host.user}
    identity_file: {host.key_path}
    known_hosts: {host.known_hosts}
    config_file: {host.empty_config}
    root: {root}
    max_runs: 8
policies:
  poll_interval: 1
  connect_timeout: 5
  command_timeout: 30
  backoff: {{base_seconds: 0, factor: 1, max_seconds: 0}}
"""


def make_ssh_project(tmp_path: Path, host: SshdHost, remote_dir: Path, *, seeds: int, sleep: float) -> Path:
    root = f"{remote_dir.name}/runs"  # relative: resolved against $HOME on the target
    spec = dispatch(seeds, sleep)
    assert "  targets: [local]\n" in spec
    launch_log = remote_dir / "launches.log"
    spec = spec.replace("  targets: [local]\n", f"  targets: [gpu1]\n  env: {{LAUNCH_LOG: {launch_log}}}\n")
    files = {"config/reconciler.yaml": config(host, root), "dispatch/experiments.yaml": spec, "job.py": JOB}
    return commit_project(tmp_path / "project", files)


@dataclass
class Counted:
    """What each in-process pass did on the target."""

    commands: list[int] = field(default_factory=list)
    """Remote commands of each pass, all runners together."""
    probes: list[int] = field(default_factory=list)
    """Remote commands of each probe (one probe per pass)."""


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counted:
    seen = Counted()
    real_probe = ShellRunner.probe
    real_close = Runners.close

    async def close(self: Runners) -> None:
        seen.commands.append(self.commands)
        await real_close(self)

    async def probe(self: ShellRunner, *args: object, **kwargs: object) -> TargetObservation:
        observation = await real_probe(self, *args, **kwargs)  # type: ignore[arg-type]
        seen.probes.append(observation.commands)
        return observation

    monkeypatch.setattr(ShellRunner, "probe", probe)
    monkeypatch.setattr(Runners, "close", close)
    return seen


def run_pass(project: Path) -> PassResult:
    return reconcile_once(project, log=lambda message: None)


def statuses(project: Path) -> dict[str, str]:
    path = project / "dispatch" / "state.json"
    if not path.exists():
        return {}
    return {e["id"]: e["status"] for e in json.loads(path.read_text())["experiments"]}


def passes_until(project: Path, predicate: Callable[[dict[str, str]], bool], deadline: float = 25.0) -> int:
    """Run passes until ``predicate(statuses)`` holds; returns how many it took."""
    end = time.monotonic() + deadline
    n = 0
    while not predicate(statuses(project)):
        if time.monotonic() > end:
            raise AssertionError(f"not reached after {n} passes ({deadline} s): {statuses(project)}")
        run_pass(project)
        n += 1
    return n


def launches(remote_dir: Path) -> list[str]:
    path = remote_dir / "launches.log"
    return path.read_text().split() if path.exists() else []


@contextlib.contextmanager
def killing_runs(remote_dir: Path) -> Iterator[None]:
    """On the way out, kill (by the pids their run dirs recorded) any run still alive."""
    try:
        yield
    finally:
        for pid_file in remote_dir.glob("runs/runs/*/*/pid"):
            with contextlib.suppress(ValueError, OSError):
                os.killpg(int(pid_file.read_text().strip()), signal.SIGKILL)


def test_runs_to_done_over_ssh_with_one_probe_command(
    sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path, counted: Counted
) -> None:
    host = sshd_hosts[0]
    project = make_ssh_project(tmp_path, host, rctest_dir, seeds=3, sleep=0.0)
    with killing_runs(rctest_dir):
        first = run_pass(project)
        assert not first.unreachable, first.unreachable
        assert set(statuses(project)) == {"job_s0", "job_s1", "job_s2"}
        assert "3 launched" in git(project, "log", "-1", "--format=%s")
        passes_until(project, lambda s: all(v == "done" for v in s.values()))
    for seed in range(3):
        rows = (project / f"experiments/results/job_s{seed}.csv").read_text().splitlines()
        assert rows[1].startswith(f"job_s{seed},m,d,main,accuracy,{seed},0.9")
    assert sorted(launches(rctest_dir)) == ["job_s0", "job_s1", "job_s2"]
    assert git(project, "status", "--porcelain") == ""  # results and state committed
    # The runs lived on the target, under the relative root resolved against rctest's home.
    assert sorted(p.name for p in (rctest_dir / "runs" / "runs").iterdir()) == ["job_s0", "job_s1", "job_s2"]
    # The first probe installs itself (two commands and a put); every later one is one command.
    assert counted.probes[0] == 2 and set(counted.probes[1:]) == {1}, counted.probes
    # Steady state: a pass over a converged project is one remote command in all, and no commit.
    head = git(project, "rev-parse", "HEAD")
    idle = run_pass(project)
    assert idle.commit is None and git(project, "rev-parse", "HEAD") == head
    assert counted.commands[-1] == 1 and counted.probes[-1] == 1, (counted.commands, counted.probes)
    print(f"\nremote commands per pass: {counted.commands}; per probe: {counted.probes}")


def test_sshd_down_makes_runs_unreachable_then_they_resume(
    sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path, counted: Counted
) -> None:
    host = sshd_hosts[0]
    project = make_ssh_project(tmp_path, host, rctest_dir, seeds=2, sleep=6.0)
    with killing_runs(rctest_dir):
        try:
            run_pass(project)
            assert statuses(project) == {"job_s0": "running", "job_s1": "running"}
            host.stop()
            down = run_pass(project)
            assert "gpu1" in down.unreachable
            assert statuses(project) == {"job_s0": "unreachable", "job_s1": "unreachable"}
            assert down.commit is not None and "unreachable" in git(project, "log", "-1", "--format=%s")
        finally:
            host.start()
        back = run_pass(project)
        assert not back.unreachable
        assert set(statuses(project).values()) <= {"running", "done"}, statuses(project)
        print(f"\nafter sshd came back: {statuses(project)}")
        passes_until(project, lambda s: all(v == "done" for v in s.values()))
    state = json.loads((project / "dispatch" / "state.json").read_text())["experiments"]
    assert [(e["attempt"], e["retry_count"], e["status"]) for e in state] == [(1, 0, "done"), (1, 0, "done")]
    assert sorted(launches(rctest_dir)) == ["job_s0", "job_s1"]  # adopted, never relaunched
    for seed in range(2):
        assert (project / f"experiments/results/job_s{seed}.csv").exists()
