"""Issue 14, item 7: ``kill -9`` is not an OOM without evidence, and a retry never starts while
the old attempt's process group still has a live member.

Real processes on the local target: the job forks a child into its process group and then
``kill -9``s its own shell; the wrapper records exit 137 and the child lives on."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType

from reconciler.plan import failure
from tests.engine.project import CONFIG, JOB, git, launches, reconcile, until

PROBE = Path(__file__).parents[2] / "reconciler" / "backends" / "resources" / "probe.py"

DISPATCH = """\
version: 1
defaults:
  phase: pilot
  expected_duration_hours: 0.01
  targets: [local]
  max_retries: 1
experiments:
  - id: k
    command: >-
      [ -n "$RECONCILER_DRY_RUN" ] && exit 0;
      python3 job.py --exp {exp_id} --out {result_file} --batch-size 8 --sleep 120 &
      echo $! >> "$LAUNCH_LOG.child"; sleep 0.5; kill -9 $$
    seeds: [0]
    group: main
    method: m
    dataset: d
"""


def make_project(root: Path) -> Path:
    project = root / "project"
    (project / "config").mkdir(parents=True)
    (project / "dispatch").mkdir()
    (project / "config" / "reconciler.yaml").write_text(CONFIG)
    (project / "dispatch" / "experiments.yaml").write_text(DISPATCH)
    (project / "job.py").write_text(JOB)
    (project / ".gitignore").write_text(".reconciler/\n")
    git(project, "init", "-q", "-b", "main")
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "add", "-A")
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "desired state")
    return project


def entry(project: Path) -> dict[str, object]:
    (only,) = json.loads((project / "dispatch" / "state.json").read_text())["experiments"]
    assert isinstance(only, dict)
    return only


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] not in ("Z", "X")


def children(project: Path) -> list[int]:
    path = Path(str(project.parent / "launches.log") + ".child")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_kill_9_is_killed_not_oom_and_the_retry_waits_for_the_group(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    run_dir = project / ".reconciler" / "runs-local" / "runs" / "k_s0" / "1"
    try:
        first = reconcile(project, "--once")
        assert first.returncode == 0, first.stderr
        until(lambda: (run_dir / "exit_code").exists(), deadline=30)
        assert (run_dir / "exit_code").read_text().strip() == "137"
        (child,) = children(project)
        assert alive(child)

        second = reconcile(project, "--once")
        assert second.returncode == 0, second.stderr
        e = entry(project)
        attempts = e["attempts"]
        assert isinstance(attempts, list)
        assert [a["n"] for a in attempts] == [1], e  # no retry launched while the child lived
        assert attempts[0]["failure_class"] == "killed" and attempts[0]["exit_code"] == 137
        assert e["status"] == "pending" and e["retry_count"] == 1
        assert "--batch-size 8" in str(e["command"])  # no remediation for a plain kill
        assert not alive(child)  # the reconciler stopped what the attempt left
        assert launches(project) == ["k_s0"]

        third = reconcile(project, "--once")
        assert third.returncode == 0, third.stderr
        e = entry(project)
        attempts = e["attempts"]
        assert isinstance(attempts, list)
        assert [a["n"] for a in attempts] == [1, 2], e  # the group was empty: the retry went
        assert "--batch-size 8" in attempts[1]["command"]
    finally:
        for pid in children(project):
            if alive(pid):
                os.kill(pid, 9)


def _probe_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("target_probe", PROBE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cgroup_oom_kill_count_going_up_is_kernel_oom_evidence(tmp_path: Path) -> None:
    probe = _probe_module()
    events = tmp_path / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "oom_watch").write_text(f"{events}\n1\n")  # what the wrapper recorded at start
    assert probe.cgroup_oom_evidence(str(run_dir)) == []  # nothing happened since
    events.write_text("low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\noom_group_kill 0\n")
    evidence = probe.oom_evidence(str(run_dir), 4242, [])
    assert evidence == [f"cgroup {events}: oom_kill 1 -> 2 since the run started"]
    assert failure.classify(137, ["epoch 1"], None, evidence).klass == failure.KERNEL_OOM
    assert failure.classify(137, ["epoch 1"]).klass == "killed"


def test_kernel_log_line_naming_the_job_is_evidence(tmp_path: Path) -> None:
    probe = _probe_module()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "job_pid").write_text("5151\n")
    log = [
        "Out of memory: Killed process 777 (python3) total-vm:1kB",
        "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),task=python3,pid=5151,uid=1000",
        "Memory cgroup out of memory: Killed process 5151 (python3) total-vm:9kB",
    ]
    assert probe.oom_evidence(str(run_dir), 4242, log) == log[1:]
    assert probe.oom_evidence(str(run_dir), 4242, log[:1]) == []


def test_what_is_left_of_a_group_excludes_a_reused_pid(tmp_path: Path) -> None:
    probe = _probe_module()
    me = os.getpid()
    _, my_start, my_group = probe.process_state(me)
    groups = {my_group: [(me, my_start)], 999999: [(1234, "50"), (1235, "10")]}
    # The leader's pid now belongs to a process with another start time: that group is not ours.
    assert probe.group_left(me, str(int(my_start) - 1), {me: [(me, my_start)]}) == []
    # The leader is gone: members started no earlier than it are what is left; older ones are not ours.
    assert probe.group_left(999999, "20", groups) == [1234]
    assert probe.group_left(999998, "20", groups) == []
