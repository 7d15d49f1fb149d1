"""SshTransport against real OpenSSH servers on loopback: commands, stdin, sharing, SFTP, timing."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from reconciler.backends.base import Completed, Transport
from reconciler.backends.ssh import SshPool, SshTransport
from reconciler.errors import RemoteFileMissing, TransportError
from tests.fixtures.sshd import SshdHost

pytestmark = pytest.mark.ssh


def test_run_returns_stdout_stderr_and_exit_code(sshd_hosts: list[SshdHost]) -> None:
    host = sshd_hosts[0]

    async def scenario() -> tuple[Completed, Completed, str]:
        transport = await SshTransport.open(host.options(), name="gpu1")
        try:
            done = await transport.run("echo out; echo err >&2; exit 3")
            quoted = await transport.run("""printf '%s|' "it's" '$HOME' "a  b"; id -un""")
            return done, quoted, transport.name
        finally:
            await transport.close()

    done, quoted, name = asyncio.run(scenario())
    assert done == Completed(3, "out\n", "err\n")
    assert quoted == Completed(0, "it's|$HOME|a  b|rctest\n", "")
    assert name == "gpu1"


def test_stdin_is_fed_and_always_closed(sshd_hosts: list[SshdHost]) -> None:
    host = sshd_hosts[0]

    async def scenario() -> tuple[Completed, Completed, Completed]:
        transport = await SshTransport.open(host.options())
        try:
            fed = await transport.run("tr a-z A-Z", stdin=b"hello\nworld\n")
            binary = await transport.run("wc -c", stdin=bytes(range(256)) * 1000)
            empty = await transport.run("cat; echo end", timeout=30)  # EOF sent: cat returns
            return fed, binary, empty
        finally:
            await transport.close()

    fed, binary, empty = asyncio.run(scenario())
    assert fed.stdout == "HELLO\nWORLD\n"
    assert binary.stdout.strip() == "256000"
    assert empty == Completed(0, "end\n", "")


def test_fifty_concurrent_commands_share_one_connection(sshd_hosts: list[SshdHost]) -> None:
    host = sshd_hosts[0]

    async def scenario() -> tuple[list[Completed], int, int, float]:
        async with SshPool() as pool:
            transport = pool.transport(host.options(), name="gpu1")
            start = time.perf_counter()
            results = await asyncio.gather(*(transport.run(f"echo {i} $SSH_CONNECTION") for i in range(50)))
            elapsed = time.perf_counter() - start
            return list(results), transport.connects, transport.commands, elapsed

    results, connects, commands, elapsed = asyncio.run(scenario())
    print(f"\n50 concurrent commands over one connection: {elapsed:.3f} s")
    assert [r.returncode for r in results] == [0] * 50
    assert sorted(int(r.stdout.split()[0]) for r in results) == list(range(50))
    client_ports = {r.stdout.split()[2] for r in results}  # SSH_CONNECTION: cli-ip cli-port srv-ip srv-port
    server_ends = {tuple(r.stdout.split()[3:5]) for r in results}
    assert len(client_ports) == 1, "the server saw more than one connection"
    assert server_ends == {(host.address, str(host.port))}
    assert connects == 1
    assert commands == 50


def test_pool_shares_a_connection_between_targets_and_closes_it(sshd_hosts: list[SshdHost]) -> None:
    first, second = sshd_hosts

    async def scenario() -> tuple[list[Completed], int, int]:
        pool = SshPool(connect_timeout=5, command_timeout=30)
        a = pool.transport(first.options(), name="ssh-target")
        b = pool.transport(first.options(), name="slurm-login")  # same host: same connection
        c = pool.transport(second.options(), name="other-host")
        outs = await asyncio.gather(*(t.run("echo $SSH_CONNECTION") for t in (a, b, c)))
        await a.close()  # a pooled transport leaves the connection to the pool
        outs.append(await b.run("echo still"))
        links = pool.connections
        await pool.close()
        with pytest.raises(TransportError, match="closed"):
            await b.run("true")
        return outs, links, a.connects + b.connects

    outs, links, connects = asyncio.run(scenario())
    assert outs[0].stdout.split()[1] == outs[1].stdout.split()[1]  # one client port: one connection
    assert outs[2].stdout.split()[2] == sshd_hosts[1].address
    assert outs[3].stdout == "still\n"
    assert links == 2
    assert connects == 2  # the shared link, counted once per transport


def test_put_get_round_trip(sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path) -> None:
    host = sshd_hosts[0]
    payload = os.urandom(1 << 20) + b"tail"
    source = tmp_path / "source.bin"
    source.write_bytes(payload)
    back_abs, back_home = tmp_path / "back_abs.bin", tmp_path / "back_home.bin"

    async def scenario() -> tuple[int, int, str]:
        transport: Transport = await SshTransport.open(host.options())
        try:
            await transport.put(source, str(rctest_dir / "blob.bin"))
            await transport.get(str(rctest_dir / "blob.bin"), back_abs)
            await transport.put(source, f"~/{rctest_dir.name}/home.bin")  # ~ means the home
            await transport.get(f"~/{rctest_dir.name}/home.bin", back_home)
            owner = await transport.run(f"stat -c %U {rctest_dir}/blob.bin")
            return transport.bytes_transferred, transport.commands, owner.stdout.strip()
        finally:
            await transport.close()

    transferred, commands, owner = asyncio.run(scenario())
    assert back_abs.read_bytes() == payload
    assert back_home.read_bytes() == payload
    assert (rctest_dir / "home.bin").read_bytes() == payload
    assert transferred == 4 * len(payload) + len("rctest\n")  # files, plus the command's output
    assert commands == 1
    assert owner == "rctest"


def test_get_of_a_missing_file_is_typed_and_named(sshd_hosts: list[SshdHost], tmp_path: Path) -> None:
    async def scenario() -> str:
        transport = await SshTransport.open(sshd_hosts[0].options(), name="gpu1")
        try:
            await transport.get("~/no/such/file", tmp_path / "x")
        except RemoteFileMissing as exc:
            return str(exc)
        finally:
            await transport.close()
        return ""

    message = asyncio.run(scenario())
    assert "gpu1" in message and "no/such/file" in message


def test_closed_transport_refuses_calls(sshd_hosts: list[SshdHost]) -> None:
    async def scenario() -> None:
        transport = await SshTransport.open(sshd_hosts[0].options())
        await transport.close()
        await transport.run("true")

    with pytest.raises(TransportError, match="closed"):
        asyncio.run(scenario())


def test_timing_sequential_commands_on_one_connection(sshd_hosts: list[SshdHost]) -> None:
    host = sshd_hosts[0]

    async def scenario() -> tuple[float, float, int]:
        start = time.perf_counter()
        transport = await SshTransport.open(host.options())
        connected = time.perf_counter() - start
        try:
            start = time.perf_counter()
            for i in range(100):
                done = await transport.run(f"echo {i}")
                assert done.stdout == f"{i}\n"
            return connected, time.perf_counter() - start, transport.connects
        finally:
            await transport.close()

    connected, elapsed, connects = asyncio.run(scenario())
    print(
        f"\nconnect: {connected * 1000:.1f} ms; 100 sequential commands on one connection: "
        f"{elapsed:.2f} s ({elapsed * 10:.1f} ms/command)"
    )
    assert connects == 1
