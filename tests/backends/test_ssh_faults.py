"""Failures over a real sshd: command timeout, sshd killed mid-command, detached jobs.

Remote commands that must outlive the test block on ``tail -f /dev/null`` rather than ``sleep``:
the project's VM skips idle time, so a remote ``sleep`` can end early (see the reference).
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from reconciler.backends.ssh import SshTransport
from reconciler.errors import CommandTimeout, ConnectError, TransportError
from tests.fixtures.sshd import SshdHost, poll, process_alive

pytestmark = pytest.mark.ssh

BLOCK = "echo $$ > {pidfile}; exec tail -f /dev/null"


def _pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text())
    except (OSError, ValueError):
        return None


def _kill(pid: int | None) -> None:
    if pid is not None and process_alive(pid):
        os.kill(pid, signal.SIGKILL)


def test_command_timeout_kills_the_command_group(sshd_hosts: list[SshdHost], rctest_dir: Path) -> None:
    shell, child = rctest_dir / "shell.pid", rctest_dir / "child.pid"
    script = f"tail -f /dev/null & echo $! > {child}; echo $$ > {shell}; wait"

    async def scenario() -> tuple[str, str, int]:
        transport = await SshTransport.open(sshd_hosts[0].options(), name="gpu1", command_timeout=60)
        try:
            with pytest.raises(CommandTimeout) as info:
                await transport.run(script, timeout=0.5)
            pids = [_pid(shell), _pid(child)]
            assert None not in pids
            # A "signal" channel request: sshd kills the command's process group.
            await poll(lambda: not any(process_alive(p) for p in pids if p), "the command group to die")
            after = await transport.run("echo alive")  # the connection is still usable
            return str(info.value), after.stdout, transport.connects
        finally:
            await transport.close()
            _kill(_pid(shell))
            _kill(_pid(child))

    message, after, connects = asyncio.run(scenario())
    assert "gpu1" in message and "0.5s" in message
    assert after == "alive\n"
    assert connects == 1


def test_sshd_killed_mid_command_then_reconnect(sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path) -> None:
    host = sshd_hosts[0]
    pidfile = rctest_dir / "blocked.pid"
    local = tmp_path / "f.txt"
    local.write_text("sftp\n")

    async def scenario() -> tuple[BaseException, BaseException, str, int]:
        transport = await SshTransport.open(host.options(), name="gpu1")
        try:
            await transport.put(local, str(rctest_dir / "before.txt"))  # an SFTP client is open
            running = asyncio.create_task(transport.run(BLOCK.format(pidfile=pidfile)))
            await poll(lambda: _pid(pidfile) is not None, "the command to start")
            host.stop()  # the listener, this connection's sshd and the command all die
            with pytest.raises(TransportError) as lost:
                await running
            with pytest.raises(ConnectError) as down:  # next call: one reconnect attempt, refused
                await transport.run("true")
            host.start()
            back = await transport.run("echo back")
            await transport.put(local, str(rctest_dir / "after.txt"))  # a new SFTP client
            return lost.value, down.value, back.stdout, transport.connects
        finally:
            host.start()
            await transport.close()
            _kill(_pid(pidfile))

    lost, down, back, connects = asyncio.run(scenario())
    assert type(lost) is TransportError, lost
    assert "gpu1" in str(lost)
    assert f"{host.address}:{host.port}" in str(down)
    assert back == "back\n"
    assert (rctest_dir / "after.txt").read_text() == "sftp\n"
    assert connects == 2


def test_cancelled_run_stops_the_remote_command(sshd_hosts: list[SshdHost], rctest_dir: Path) -> None:
    pidfile = rctest_dir / "blocked.pid"

    async def scenario() -> str:
        transport = await SshTransport.open(sshd_hosts[0].options())
        try:
            running = asyncio.create_task(transport.run(BLOCK.format(pidfile=pidfile)))
            await poll(lambda: _pid(pidfile) is not None, "the command to start")
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
            pid = _pid(pidfile)
            assert pid is not None
            await poll(lambda: not process_alive(pid), "the cancelled command to die")
            return (await transport.run("echo ok")).stdout
        finally:
            await transport.close()
            _kill(_pid(pidfile))

    assert asyncio.run(scenario()) == "ok\n"


def test_detached_job_survives_the_connection_closing(sshd_hosts: list[SshdHost], rctest_dir: Path) -> None:
    pidfile = rctest_dir / "job.pid"
    job = f"echo $$ > {pidfile}; exec tail -f /dev/null"
    launch = f"cd {rctest_dir} && setsid nohup sh -c '{job}' >/dev/null 2>&1 </dev/null &"

    async def scenario() -> tuple[int, str]:
        transport = await SshTransport.open(sshd_hosts[0].options())
        try:
            started = await transport.run(launch, timeout=10)  # returns at once: nothing holds the session
            assert started.returncode == 0
            await poll(lambda: _pid(pidfile) is not None, "the job's pidfile")
        finally:
            await transport.close()
        pid = _pid(pidfile)
        assert pid is not None
        second = await SshTransport.open(sshd_hosts[0].options())
        try:
            seen = await second.run(f"ps -o stat=,user= -p {pid}")
            await second.run(f"kill {pid}")
        finally:
            await second.close()
        return pid, seen.stdout

    try:
        pid, seen = asyncio.run(scenario())
        stat, user = seen.split()
        assert user == "rctest"
        assert not stat.startswith("Z")
        assert "s" in stat  # a session leader: setsid detached it from the ssh session
        asyncio.run(poll(lambda: not process_alive(pid), "the job to be killed"))
    finally:
        _kill(_pid(pidfile))
