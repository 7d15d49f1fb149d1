"""``LocalTransport``: commands, stdin, counters, timeouts and errors at the boundary."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reconciler.backends.base import Completed, Transport
from reconciler.backends.local import LocalTransport
from reconciler.errors import CommandTimeout, RemoteFileMissing, TransportError
from tests.backends.helpers import running, wait_until


def test_it_is_a_transport() -> None:
    transport: Transport = LocalTransport()
    assert transport.name == "local"


def test_run_with_stdin_and_counters(tmp_path: Path) -> None:
    async def scenario() -> tuple[Completed, Completed, LocalTransport]:
        transport = LocalTransport(env={"GREETING": "hi there"}, cwd=tmp_path)
        first = await transport.run('echo "$GREETING"; pwd; tr a-z A-Z; echo err >&2; exit 3', stdin=b"abc\n")
        second = await transport.run("cat; echo end")  # no stdin: /dev/null, so cat returns
        return first, second, transport

    first, second, transport = asyncio.run(scenario())
    assert first == Completed(3, f"hi there\n{tmp_path}\nABC\n", "err\n")
    assert second == Completed(0, "end\n", "")
    assert transport.commands == 2
    assert transport.bytes_transferred == len(b"abc\n") + len(first.stdout) + len("err\n") + len("end\n")


def test_timeout_kills_the_command_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"

    async def scenario() -> None:
        transport = LocalTransport(command_timeout=30)
        with pytest.raises(CommandTimeout):
            await transport.run(f"sleep 60 & echo $! > {pid_file}; wait", timeout=0.5)

    asyncio.run(scenario())
    child = int(pid_file.read_text())
    wait_until(lambda: not running(child), "the timed-out command's child to die")


def test_put_get_and_errors(tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("payload")

    async def scenario() -> LocalTransport:
        transport = LocalTransport(cwd=tmp_path)
        await transport.put(src, "b.txt")  # relative to cwd, like SFTP's home
        await transport.get(str(tmp_path / "b.txt"), tmp_path / "c.txt")
        with pytest.raises(RemoteFileMissing):
            await transport.get(str(tmp_path / "missing"), tmp_path / "d.txt")
        with pytest.raises(TransportError):
            await transport.put(src, str(tmp_path / "no" / "such" / "dir.txt"))
        await transport.close()
        with pytest.raises(TransportError):
            await transport.run("true")
        return transport

    transport = asyncio.run(scenario())
    assert (tmp_path / "c.txt").read_text() == "payload"
    assert transport.bytes_transferred == 2 * len("payload")


def test_missing_working_dir_is_a_transport_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        with pytest.raises(TransportError):
            await LocalTransport(cwd=tmp_path / "gone").run("true")

    asyncio.run(scenario())


def test_shell_runner_is_a_runner(tmp_path: Path) -> None:
    from reconciler.backends.base import Runner
    from reconciler.backends.shell import ShellRunner
    from reconciler.model.config import Target, TargetKind

    runner: Runner = ShellRunner(Target("t", TargetKind.LOCAL, str(tmp_path)), LocalTransport(), None, "p")
    assert runner.name == "t"


def test_a_missing_file_is_a_typed_error_not_a_message(tmp_path: Path) -> None:
    """Issue 16, item 4: the executor tells "the result file is not there" (a failed run) from a
    transport failure by the error's type, never by matching "No such file" in its text."""
    transport = LocalTransport(cwd=tmp_path)
    with pytest.raises(RemoteFileMissing, match="does not exist"):
        asyncio.run(transport.get(str(tmp_path / "absent.csv"), tmp_path / "copy.csv"))
    assert not (tmp_path / "copy.csv").exists()
