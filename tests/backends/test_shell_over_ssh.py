"""``ShellRunner`` over ``SshTransport`` against the real loopback sshd, as the engine uses it.

Two passes, each with its own ``SshPool`` (one connection per pass), on an ``ssh`` target whose
root is ``~``-relative under rctest's home: probe (installs the probe by SFTP) -> ship code (SFTP
put, unpack) -> launch -> probe until done -> collect (SFTP get); a second run is left running
when the first pass's connection closes, and the second pass finds it alive and kills it.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import tarfile
import time
from pathlib import Path

import pytest

from reconciler.backends.shell import ShellRunner
from reconciler.backends.ssh import SshPool
from reconciler.model.actions import Cancel, Collect, Kill, Launch, Started
from reconciler.model.config import Target, TargetKind
from reconciler.model.ids import launch_token
from reconciler.model.observed import RunObservation
from tests.fixtures.sshd import SshdHost, process_alive

pytestmark = pytest.mark.ssh

PROJECT = "demo"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
RESULT = "results/out.csv"


def _archive(path: Path) -> Path:
    """A tar of a tiny "commit": the job reads ``input.txt`` from its code dir."""
    with tarfile.open(path, "w") as tar:
        data = b"seed,value\n0,0.9\n"
        info = tarfile.TarInfo("input.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def _launch(root: str, exp_id: str, command: str) -> Launch:
    return Launch(
        exp_id=exp_id,
        target="gpu1",
        attempt=1,
        command=command,
        run_dir=f"{root}/runs/{exp_id}/1",
        token=launch_token(PROJECT, exp_id, 1),
        code_dir=f"{root}/code/{COMMIT}",
        commit=COMMIT,
        result_file=RESULT,
        checkpoint_dir=f"{root}/checkpoints/{exp_id}",
    )


async def _observe(runner: ShellRunner, key: tuple[str, int], done: str) -> RunObservation:
    """Probe until the run is ``done`` ("exited" or "alive"); each probe is one command."""
    for _ in range(400):
        observation = await runner.probe(want=[key])
        assert observation.reachable and observation.commands == 1
        run = observation.run(*key)
        if run is not None and (run.exit_code is not None if done == "exited" else run.alive):
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {key} never {done}")


def test_launch_probe_collect_kill_over_ssh(sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path) -> None:
    host = sshd_hosts[0]
    options = host.options()
    target = Target(name="gpu1", kind=TargetKind.SSH, root=f"~/{rctest_dir.name}/proj", ssh=options)
    archive = _archive(tmp_path / "code.tar")
    dest = tmp_path / "collected" / "out.csv"
    copy = 'cat input.txt > "$RECONCILER_RUN_DIR/results/out.csv"'
    block = "exec tail -f /dev/null"  # never ends on its own (a remote sleep may, on this VM)

    async def first_pass() -> tuple[str, RunObservation, Started, int, int]:
        async with SshPool(connect_timeout=5, command_timeout=60) as pool:
            transport = pool.transport(options, name=target.name)
            runner = ShellRunner(target, transport, None, PROJECT, kill_grace=5.0)
            start = time.perf_counter()
            empty = await runner.probe()
            assert empty.reachable and not empty.runs and empty.root
            root = empty.root
            await runner.ship_code(COMMIT, archive)
            facts = await runner.launch(_launch(root, "quick", copy))
            finished = await _observe(runner, ("quick", 1), "exited")
            await runner.collect(Collect("quick", "gpu1", 1, f"{root}/runs/quick/1/{RESULT}", str(dest)), dest)
            long_facts = await runner.launch(_launch(root, "long", block))
            await _observe(runner, ("long", 1), "alive")
            print(
                f"\nfirst pass over ssh: {transport.commands} commands, "
                f"{transport.bytes_transferred} bytes, {time.perf_counter() - start:.2f} s"
            )
            return root, finished, long_facts, transport.connects, int(str(facts.pid))

    async def second_pass(root: str, long_facts: Started) -> tuple[bool, RunObservation, int]:
        async with SshPool(connect_timeout=5, command_timeout=60) as pool:
            transport = pool.transport(options, name=target.name)
            runner = ShellRunner(target, transport, None, PROJECT, kill_grace=5.0)
            still = await _observe(runner, ("long", 1), "alive")  # survived the closed connection
            assert still.pid == long_facts.pid
            kill = Kill("long", "gpu1", 1, f"{root}/runs/long/1", still.pid, still.start_time, reason=Cancel("test"))
            gone = await runner.kill(kill)
            ended = await _observe(runner, ("long", 1), "exited")
            return gone, ended, transport.connects

    root, finished, long_facts, connects, quick_pid = asyncio.run(first_pass())
    assert root == str(rctest_dir / "proj")
    assert finished.exit_code == 0 and finished.result_size == len("seed,value\n0,0.9\n")
    assert dest.read_text() == "seed,value\n0,0.9\n"
    assert (rctest_dir / "proj" / "code" / COMMIT / ".complete").exists()
    assert connects == 1  # the whole pass over one connection
    assert not process_alive(quick_pid)
    long_pid = int(str(long_facts.pid))
    assert process_alive(long_pid)
    try:
        gone, ended, connects = asyncio.run(second_pass(root, long_facts))
        assert gone
        assert not process_alive(long_pid)
        assert ended.exit_code is not None and ended.exit_code != 0
        assert connects == 1
    finally:
        if process_alive(long_pid):
            os.killpg(long_pid, signal.SIGKILL)
