"""Liveness and kill against real ``setsid`` process groups: the whole group dies and that is
verified; a reused pid, an orphaned group that cannot be shown to be ours, and a zombie are never
taken for our live run, and nothing that is not ours is ever killed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from reconciler.backends.local import LocalTransport
from reconciler.backends.shell import ShellRunner
from reconciler.model.config import Target, TargetKind
from reconciler.model.observed import RunObservation
from tests.backends.helpers import (
    SPAWN_CHILD,
    Backend,
    exists,
    fake_run_dir,
    finished,
    kill_for,
    make_launch,
    observe,
    orphaned_group,
    poll,
    proc_state,
    run,
    running,
    wait_until,
)


def test_kill_stops_the_whole_process_group(backend: Backend) -> None:
    async def scenario() -> tuple[bool, int, int, RunObservation]:
        runner = await backend.runner()
        action = make_launch(backend.root, SPAWN_CHILD)
        started = await runner.launch(action)
        child = Path(action.run_dir, "child.pid")
        await poll(lambda: exists(child), "the child pid")
        child_pid = int(child.read_text())
        assert running(child_pid)
        pid, start = started.pid, started.start_time
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
        pid = started.pid
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
        await poll(lambda: exists(child), "the child pid")
        pid, start = started.pid, started.start_time
        assert isinstance(pid, int) and isinstance(start, str)
        os.kill(pid, signal.SIGKILL)  # the wrapper dies; the job's processes stay in its group
        wait_until(lambda: not running(pid), "the wrapper to die")
        gone = await runner.kill(kill_for(action, pid, start))
        return gone, int(child.read_text())

    gone, child_pid = run(scenario())
    assert gone is True and not running(child_pid)


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
    pgid, start, orphan = orphaned_group()
    try:
        backend.make_root()
        fake_run_dir(backend.root, "O_s0", pgid, start)

        async def scenario() -> bool:
            runner = await backend.runner()
            action = make_launch(backend.root, "true", exp_id="O_s0")
            return await runner.kill(kill_for(action, pgid, start))

        assert run(scenario()) is False
        assert running(orphan)
    finally:
        os.kill(orphan, signal.SIGKILL)


def test_orphan_group_with_our_run_dir_in_its_environment_is_killed(tmp_path: Path) -> None:
    """Local only: over SSH the target user may not read another user's environment."""
    root = tmp_path / "root"
    run_dir = root / "runs" / "M_s0" / "1"
    pgid, start, orphan = orphaned_group({"RECONCILER_RUN_DIR": str(run_dir)})
    try:
        fake_run_dir(root, "M_s0", pgid, start)

        async def scenario() -> bool:
            runner = ShellRunner(Target("t", TargetKind.LOCAL, str(root)), LocalTransport(), None, "demo")
            action = make_launch(root, "true", exp_id="M_s0")
            return await runner.kill(kill_for(action, pgid, start))

        assert run(scenario()) is True
        wait_until(lambda: not running(orphan), "the orphan to die")
    finally:
        with contextlib.suppress(ProcessLookupError):
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
