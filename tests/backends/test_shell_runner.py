"""``ShellRunner`` with real processes, over every transport of ``helpers.backend``.

Launch, observe, adopt, refuse, survive, kill: the exactly-once and never-kill-a-stranger
properties of the design are checked against real ``setsid`` process groups.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.backends.shell import ShellRunner
from reconciler.crashpoints import CRASH_EXIT_CODE
from reconciler.errors import PermanentError
from reconciler.model.observed import RunObservation
from tests.backends.helpers import (
    Backend,
    kill_for,
    make_launch,
    poll,
    proc_state,
    run,
    running,
    wait_until,
)

WRITE_CSV = (
    "python3 -c \"import sys; open(sys.argv[1], 'w').write('exp_id,metric,value\\nA,acc,0.9\\n')\" "
    "{result}; echo line-1; echo line-2 >&2; "
    """printf '{{"wandb_run_id": "w1"}}' > "$RECONCILER_RUN_DIR/status.json"; exit 0"""
)
# Runs until the test creates ``go`` (bounded: 3000 polls, so a failed test leaves nothing behind).
WAIT_FOR_GO = (
    'i=0; while [ ! -f "$RECONCILER_RUN_DIR/go" ] && [ $i -lt 3000 ]; do sleep 0.05; i=$((i+1)); done; echo finished'
)


async def observe(runner: ShellRunner, exp_id: str, attempt: int = 1) -> RunObservation | None:
    obs = await runner.probe(want=[(exp_id, attempt)])
    return obs.run(exp_id, attempt)


async def finished(runner: ShellRunner, exp_id: str) -> RunObservation | None:
    run_obs = await observe(runner, exp_id)
    return run_obs if run_obs is not None and run_obs.exit_code is not None else None


def test_launch_runs_to_completion_and_probe_reports_it(backend: Backend) -> None:
    async def scenario() -> tuple[dict[str, object], RunObservation, str]:
        runner = await backend.runner()
        exp_id = "W_s0"
        result = f"{backend.root}/runs/{exp_id}/1/experiments/results/{exp_id}.csv"
        action = make_launch(backend.root, WRITE_CSV.format(result=result), exp_id=exp_id)
        started = await runner.launch(action)
        done = await poll(lambda: finished(runner, action.exp_id), "the run to finish")
        return started, done, action.run_dir

    started, done, run_dir = run(scenario())
    assert isinstance(started["pid"], int) and started["start_time"] and started["host"] == os.uname().nodename
    assert started["adopted"] is False
    assert done.exit_code == 0 and done.launched and not done.alive
    assert done.pid == started["pid"] and done.start_time == started["start_time"]
    assert done.result_size == len("exp_id,metric,value\nA,acc,0.9\n")
    assert done.sidecar == {"wandb_run_id": "w1"}
    assert done.log_tail == ("line-1", "line-2")
    assert done.heartbeat_age is not None and done.age is not None
    assert Path(run_dir, "wrapper.sh").is_file() and Path(run_dir, "launch.lock").is_dir()


def test_running_job_is_alive_with_heartbeat_and_env(backend: Backend) -> None:
    command = 'echo "gpu=$CUDA_VISIBLE_DEVICES id=$EXP_ID attempt=$RECONCILER_ATTEMPT x=$X pwd=$(pwd)"; ' + WAIT_FOR_GO

    async def scenario() -> tuple[RunObservation, RunObservation, str]:
        runner = await backend.runner()
        action = make_launch(backend.root, command, gpus=(1, 3), env=(("X", "a b'c"),), attempt=2)
        await runner.launch(action)

        async def alive_with_log() -> RunObservation | None:
            obs = await observe(runner, action.exp_id, 2)
            return obs if obs is not None and obs.alive and obs.log_tail else None

        live = await poll(alive_with_log, "the run to be alive with output")
        Path(action.run_dir, "go").touch()
        done = await poll(lambda: _finished(runner, action.exp_id, 2), "the run to finish")
        return live, done, action.code_dir

    live, done, code_dir = run(scenario())
    assert live.exit_code is None and live.heartbeat_age is not None and live.heartbeat_age < 30
    assert live.log_tail[0].startswith("gpu=1,3 id=E") and f"pwd={code_dir}" in live.log_tail[0]
    assert "attempt=2 x=a b'c" in live.log_tail[0]
    assert done.exit_code == 0 and not done.alive and done.log_tail[-1] == "finished"


async def _finished(runner: ShellRunner, exp_id: str, attempt: int) -> RunObservation | None:
    obs = await observe(runner, exp_id, attempt)
    return obs if obs is not None and obs.exit_code is not None else None


def test_second_launch_of_the_same_attempt_adopts_the_first(backend: Backend) -> None:
    async def scenario() -> tuple[tuple[dict[str, object], dict[str, object]], dict[str, object]]:
        runner_a = await backend.runner()
        runner_b = await backend.runner()
        action = make_launch(backend.root, WAIT_FOR_GO)
        racing = await asyncio.gather(runner_a.launch(action), runner_b.launch(action))
        again = await runner_a.launch(action)
        Path(action.run_dir, "go").touch()
        return racing, again

    racing, again = run(scenario())
    assert racing[0]["pid"] == racing[1]["pid"] == again["pid"]
    assert racing[0]["start_time"] == racing[1]["start_time"] == again["start_time"]
    assert again["adopted"] is True


def test_foreign_token_is_refused(backend: Backend) -> None:
    async def scenario() -> PermanentError:
        runner = await backend.runner()
        action = make_launch(backend.root, "true")
        await runner.launch(action)
        other = make_launch(backend.root, "true", exp_id=action.exp_id, token="someone-else")
        with pytest.raises(PermanentError) as info:
            await runner.launch(other)
        return info.value

    error = run(scenario())
    assert error.reason == "ForeignRunDir"


def test_job_survives_the_transport_closing(backend: Backend) -> None:
    async def scenario() -> tuple[RunObservation | None, RunObservation]:
        first = await backend.transport()
        runner = await backend.runner(first)
        action = make_launch(backend.root, WAIT_FOR_GO)
        await runner.launch(action)
        await first.close()
        fresh = await backend.runner()
        seen = await poll(lambda: observe(fresh, action.exp_id), "the run dir")
        Path(action.run_dir, "go").touch()
        done = await poll(lambda: finished(fresh, action.exp_id), "the run to finish")
        return seen, done

    seen, done = run(scenario())
    assert seen is not None and seen.alive and seen.exit_code is None
    assert done.exit_code == 0


def test_job_survives_the_reconciler_process_dying(tmp_path: Path) -> None:
    """The launching process crashes at ``after_run_dir``, then a fresh one starts the attempt once;
    a second process launches and is SIGKILLed: the job lives on."""
    root = tmp_path / "root"
    action = make_launch(root, WAIT_FOR_GO)
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from reconciler.backends.local import LocalTransport
        from reconciler.backends.shell import ShellRunner
        from reconciler.model.config import Target, TargetKind
        from reconciler.model.actions import Launch
        action = Launch(**{action.__dict__!r})
        runner = ShellRunner(Target("t", TargetKind.LOCAL, {str(root)!r}), LocalTransport(), None, "demo")
        print(asyncio.run(runner.launch(action)), flush=True)
        sys.stdin.read()
        """
    )
    env = {**os.environ, "RECONCILER_CRASH_AT": "after_run_dir"}
    crashed = subprocess.run([sys.executable, "-c", script], env=env, stdin=subprocess.DEVNULL, check=False)
    assert crashed.returncode == CRASH_EXIT_CODE
    assert Path(action.run_dir, "wrapper.sh").is_file() and not Path(action.run_dir, "pid").exists()
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first_line = proc.stdout.readline()
    proc.kill()
    proc.wait()
    assert "'adopted': False" in first_line
    pid = int(Path(action.run_dir, "pid").read_text())
    assert running(pid)
    Path(action.run_dir, "go").touch()
    wait_until(lambda: Path(action.run_dir, "exit_code").exists(), "the job to finish")
    assert Path(action.run_dir, "exit_code").read_text().strip() == "0"


SPAWN_CHILD = 'sleep 120 & echo $! > "$RECONCILER_RUN_DIR/child.pid"; sleep 121'


def test_kill_stops_the_whole_process_group(backend: Backend) -> None:
    async def scenario() -> tuple[bool, int, int, RunObservation]:
        runner = await backend.runner()
        action = make_launch(backend.root, SPAWN_CHILD)
        started = await runner.launch(action)
        child = Path(action.run_dir, "child.pid")
        await poll(lambda: _exists(child), "the child pid")
        child_pid = int(child.read_text())
        assert running(child_pid)
        pid, start = started["pid"], started["start_time"]
        assert isinstance(pid, int) and isinstance(start, str)
        gone = await runner.kill(kill_for(action, pid, start))
        done = await poll(lambda: finished(runner, action.exp_id), "the exit code")
        return gone, pid, child_pid, done

    gone, pid, child_pid, done = run(scenario())
    assert gone is True
    assert not running(pid) and not running(child_pid)
    assert done.exit_code == 143 and not done.alive


def test_kill_without_pid_reads_the_run_dir_and_is_idempotent(backend: Backend) -> None:
    async def scenario() -> tuple[bool, bool, int]:
        runner = await backend.runner()
        action = make_launch(backend.root, SPAWN_CHILD)
        started = await runner.launch(action)
        first = await runner.kill(kill_for(action, None, None))
        second = await runner.kill(kill_for(action, None, None))
        pid = started["pid"]
        assert isinstance(pid, int)
        return first, second, pid

    first, second, pid = run(scenario())
    assert first is True and second is True and not running(pid)


def test_kill_finds_children_that_outlived_the_wrapper(backend: Backend) -> None:
    async def scenario() -> tuple[bool, int]:
        runner = await backend.runner()
        action = make_launch(backend.root, SPAWN_CHILD)
        started = await runner.launch(action)
        child = Path(action.run_dir, "child.pid")
        await poll(lambda: _exists(child), "the child pid")
        pid, start = started["pid"], started["start_time"]
        assert isinstance(pid, int) and isinstance(start, str)
        os.kill(pid, signal.SIGKILL)  # the wrapper dies; the job's processes stay in its group
        wait_until(lambda: not running(pid), "the wrapper to die")
        gone = await runner.kill(kill_for(action, pid, start))
        return gone, int(child.read_text())

    gone, child_pid = run(scenario())
    assert gone is True and not running(child_pid)


async def _exists(path: Path) -> bool:
    return path.exists()


def fake_run_dir(root: Path, exp_id: str, pid: int, start_time: str) -> Path:
    from reconciler.model.ids import launch_token

    run_dir = root / "runs" / exp_id / "1"
    run_dir.mkdir(parents=True)
    (run_dir / "token").write_text(launch_token("demo", exp_id, 1) + "\n")
    (run_dir / "launch.lock").mkdir()
    (run_dir / "pid").write_text(f"{pid}\n")
    (run_dir / "start_time").write_text(f"{start_time}\n")
    return run_dir


def test_reused_pid_is_never_alive_and_never_killed(backend: Backend) -> None:
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        state = proc_state(stranger.pid)
        assert state is not None
        wrong = str(int(state[1]) + 7)
        backend.make_root()
        run_dir = fake_run_dir(backend.root, "F_s0", stranger.pid, wrong)

        async def scenario() -> tuple[RunObservation | None, bool]:
            runner = await backend.runner()
            seen = await observe(runner, "F_s0")
            action = make_launch(backend.root, "true", exp_id="F_s0")
            return seen, await runner.kill(kill_for(action, stranger.pid, wrong))

        seen, gone = run(scenario())
        assert seen is not None and seen.launched and seen.pid == stranger.pid
        assert seen.alive is False
        assert gone is True  # ours is gone: the pid belongs to someone else now
        assert stranger.poll() is None and running(stranger.pid)
        assert run_dir.is_dir()
    finally:
        stranger.kill()
        stranger.wait()


def test_orphan_group_that_is_not_ours_is_left_alone(backend: Backend) -> None:
    """The recorded pid is gone but its group id lives on in processes without our run dir in
    their environment: ownership cannot be shown, so nothing is killed and kill says False."""
    leader = subprocess.Popen(
        ["sh", "-c", "sleep 300 & echo $!; exec sleep 299"], start_new_session=True, stdout=subprocess.PIPE
    )
    assert leader.stdout is not None
    orphan = int(leader.stdout.readline())
    state = proc_state(leader.pid)
    assert state is not None
    leader.kill()
    leader.wait()  # reaped: /proc/<leader> is gone, its group lives on in the orphan
    try:
        backend.make_root()
        fake_run_dir(backend.root, "O_s0", leader.pid, state[1])

        async def scenario() -> bool:
            runner = await backend.runner()
            action = make_launch(backend.root, "true", exp_id="O_s0")
            return await runner.kill(kill_for(action, leader.pid, state[1]))

        assert run(scenario()) is False
        assert running(orphan)
    finally:
        os.kill(orphan, signal.SIGKILL)


def test_zombie_is_not_alive(backend: Backend) -> None:
    zombie = subprocess.Popen(["true"])
    try:
        wait_until(lambda: (proc_state(zombie.pid) or ("?",))[0] == "Z", "the child to become a zombie")
        state = proc_state(zombie.pid)
        assert state is not None
        backend.make_root()
        fake_run_dir(backend.root, "Z_s0", zombie.pid, state[1])

        async def scenario() -> RunObservation | None:
            return await observe(await backend.runner(), "Z_s0")

        seen = run(scenario())
        assert seen is not None and seen.pid == zombie.pid and seen.alive is False
    finally:
        zombie.wait()
