"""``ShellRunner`` launches with real processes, over every transport of ``helpers.backend``:
run to completion, observe while running, adopt instead of relaunching, refuse a foreign run
dir, survive the transport and the reconciler going away."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.crashpoints import CRASH_EXIT_CODE
from reconciler.errors import PermanentError
from reconciler.model.actions import Started
from reconciler.model.observed import RunObservation
from tests.backends.helpers import (
    WAIT_FOR_GO,
    Backend,
    finished,
    group_members,
    make_launch,
    observe,
    poll,
    run,
    running,
    wait_until,
)

WRITE_CSV = (
    "python3 -c \"import sys; open(sys.argv[1], 'w').write('exp_id,metric,value\\nA,acc,0.9\\n')\" "
    "{result}; echo line-1; echo line-2 >&2; "
    """printf '{{"wandb_run_id": "w1"}}' > "$RECONCILER_RUN_DIR/status.json"; exit 0"""
)


def test_launch_runs_to_completion_and_probe_reports_it(backend: Backend) -> None:
    async def scenario() -> tuple[Started, RunObservation, str]:
        runner = await backend.runner()
        exp_id = "W_s0"
        result = f"{backend.root}/runs/{exp_id}/1/experiments/results/{exp_id}.csv"
        action = make_launch(backend.root, WRITE_CSV.format(result=result), exp_id=exp_id)
        started = await runner.launch(action)
        done = await poll(lambda: finished(runner, action.exp_id), "the run to finish")
        return started, done, action.run_dir

    started, done, run_dir = run(scenario())
    assert isinstance(started.pid, int) and started.start_time and started.host == os.uname().nodename
    assert started.adopted is False
    assert done.exit_code == 0 and done.launched and not done.alive
    assert done.pid == started.pid and done.start_time == started.start_time
    assert done.result_size == len("exp_id,metric,value\nA,acc,0.9\n")
    assert done.sidecar == {"wandb_run_id": "w1"}
    assert done.log_tail == ("line-1", "line-2")
    assert done.heartbeat_age is not None and done.age is not None
    assert Path(run_dir, "wrapper.sh").is_file() and Path(run_dir, "launch.lock").is_dir()
    pid = started.pid
    assert isinstance(pid, int)
    wait_until(lambda: not group_members(pid), "the wrapper's group (heartbeat loop included) to end")


def test_running_job_is_alive_with_heartbeat_and_env(backend: Backend) -> None:
    command = 'echo "gpu=$CUDA_VISIBLE_DEVICES id=$EXP_ID attempt=$RECONCILER_ATTEMPT x=$X pwd=$(pwd)"; ' + WAIT_FOR_GO

    async def scenario() -> tuple[RunObservation, RunObservation, str]:
        runner = await backend.runner()
        action = make_launch(backend.root, command, gpus=(1, 3), env=(("X", "a b'c"),), attempt=2)
        await runner.launch(action)

        async def alive_with_log() -> RunObservation | None:
            obs = await observe(runner, action.exp_id, 2)
            started = Path(action.run_dir, "stdout.log")
            return obs if obs is not None and obs.alive and started.exists() and started.read_text() else None

        live = await poll(alive_with_log, "the run to be alive with output")
        Path(action.run_dir, "go").touch()
        done = await poll(lambda: finished(runner, action.exp_id, 2), "the run to finish")
        return live, done, action.code_dir

    live, done, code_dir = run(scenario())
    assert live.exit_code is None and live.heartbeat_age is not None and live.heartbeat_age < 30
    assert live.log_tail == ()  # a healthy live run's tail stays on the target (no fatal marker)
    assert done.exit_code == 0 and not done.alive and done.log_tail[-1] == "finished"
    assert done.log_tail[0].startswith("gpu=1,3 id=E") and f"pwd={code_dir}" in done.log_tail[0]
    assert "attempt=2 x=a b'c" in done.log_tail[0]


def test_second_launch_of_the_same_attempt_adopts_the_first(backend: Backend) -> None:
    async def scenario() -> tuple[tuple[Started, Started], Started]:
        runner_a = await backend.runner()
        runner_b = await backend.runner()
        action = make_launch(backend.root, WAIT_FOR_GO)
        try:
            racing = await asyncio.gather(runner_a.launch(action), runner_b.launch(action))
            again = await runner_a.launch(action)
        finally:
            Path(action.run_dir, "go").touch()
        await poll(lambda: finished(runner_a, action.exp_id), "the run to finish")  # leave nothing running
        return racing, again

    racing, again = run(scenario())
    assert racing[0].pid == racing[1].pid == again.pid
    assert racing[0].start_time == racing[1].start_time == again.start_time
    assert again.adopted is True


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
    assert "adopted=False" in first_line
    pid = int(Path(action.run_dir, "pid").read_text())
    assert running(pid)
    Path(action.run_dir, "go").touch()
    wait_until(lambda: Path(action.run_dir, "exit_code").exists(), "the job to finish")
    assert Path(action.run_dir, "exit_code").read_text().strip() == "0"
