"""The benchmark's delaying relay (``benchmarks.relay``) and what it measures (issue 20).

The relay stands in for a network (this kernel has no netem): it must add the configured delay,
count connections, bytes and turns (round trips on the wire), and drop connections on request.
Through it, the SSH transport's costs are pinned as counts (never timings, beyond the lower bound
a delay implies): a command costs two turns on an open connection, its short stdin folded into the
exec request arrives byte for byte, and stdin that cannot be folded (binary, too long) still goes
on the channel, also byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.network import main as network_main
from benchmarks.relay import Network, Relays, delta
from benchmarks.sshfleet import SshFleet
from reconciler.backends import ssh
from reconciler.backends.ssh import SshTransport
from tests.fixtures.sshd import SshdHost


def test_network_settings_parse_and_describe() -> None:
    net = Network.parse("rtt=50ms,jitter=5ms,stall=0.01,stall_ms=200-400,seed=3")
    assert (net.rtt, net.jitter, net.stall, net.stall_min, net.stall_max, net.seed) == (
        0.05,
        0.005,
        0.01,
        0.2,
        0.4,
        3,
    )
    assert Network.parse("rtt=0.1s").rtt == 0.1
    assert "RTT 50 ms" in net.describe() and "retransmissions" in net.describe()
    for bad in ("rtt=fast", "loss=0.1", "stall=2"):
        with pytest.raises(ValueError):
            Network.parse(bad)


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A line echo server on 127.0.0.1 (a thread), for the relay's own tests."""
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()


def test_relay_delays_counts_and_drops(echo_server: int) -> None:
    relays = Relays(Network(rtt=0.1), {"echo": ("127.0.0.1", echo_server)}).start()
    try:
        before = relays.stats()
        with socket.create_connection(("127.0.0.1", relays.ports["echo"])) as sock:
            t0 = time.perf_counter()
            for i in range(3):
                sock.sendall(f"ping {i}\n".encode())
                got = b""
                while not got.endswith(b"\n"):
                    got += sock.recv(100)
                assert got == f"ping {i}\n".encode()
            elapsed = time.perf_counter() - t0
            # the handshake (one RTT before the first byte arrives) and three request/response turns
            assert elapsed >= 0.1 + 3 * 0.1 - 0.01
            wire = delta(relays.stats(), before)["echo"]
            assert wire["connections"] == 1 and wire["open"] == 1
            assert wire["bytes_up"] == wire["bytes_down"] == 3 * len(b"ping 0\n")
            assert wire["turns"] == 1 + 3  # TCP handshake, then one per answer
            assert relays.drop("echo") == 2  # both sockets of the one connection
            sock.settimeout(5)
            with contextlib.suppress(ConnectionResetError):  # aborted: the client sees the end
                assert sock.recv(100) == b""
        deadline = time.monotonic() + 5
        while relays.stats()["echo"]["open"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert relays.stats()["echo"]["open"] == 0
    finally:
        relays.stop()


@pytest.fixture
def relayed_host(tmp_path: Path) -> Iterator[SshFleet]:
    # 200 ms: the server's command starts well within a one-way trip (the count stays exact)
    fleet = SshFleet(tmp_path, ["t0"], network=Network(rtt=0.2)).start()
    try:
        yield fleet
    finally:
        fleet.stop()


TEXTS = [
    b"plain\n",
    b"no trailing newline",
    b"quotes ' \" `back` $HOME $(id) \\ \\n %s %d\n\n  spaces  \n",
    "unicode \u00e9\u4e2d \U0001f600\n".encode(),
]


@pytest.mark.slow  # about 6 s of round trips
def test_a_command_costs_two_turns_and_its_stdin_arrives_intact(relayed_host: SshFleet) -> None:
    relays = relayed_host.relays
    assert relays is not None

    async def scenario() -> list[tuple[bytes, str, int]]:
        transport = await SshTransport.open(relayed_host.options("t0"), name="t0")
        out = []
        try:
            # not folded: binary, over the size limit, or a command over its limit once quoted
            for data in [*TEXTS, b"binary \x00 nul\n", b"x" * (ssh.INLINE_STDIN_MAX + 1), b"'" * 20000]:
                before = relays.stats()
                done = await transport.run("cat; echo rc", stdin=data)
                out.append((data, done.stdout, delta(relays.stats(), before)["t0"]["turns"]))
            assert transport.connects == 1
        finally:
            await transport.close()
        return out

    for data, stdout, turns in asyncio.run(scenario()):
        assert stdout == data.decode("utf-8", "replace") + "rc\n", data[:40]
        folded = data in TEXTS
        # folded into the exec request: open the channel, exec; else the stdin goes after the exec
        assert turns == (2 if folded else 3), (data[:40], turns)


def test_folded_stdin_arrives_intact_over_real_sshd(sshd_hosts: list[SshdHost]) -> None:
    """The folded stdin goes through a real login shell (sshd runs ``$SHELL -c <command>``)."""

    async def scenario() -> list[tuple[bytes, str]]:
        transport = await SshTransport.open(sshd_hosts[0].options(), name="host0")
        try:
            return [(data, (await transport.run("cat; echo rc", stdin=data)).stdout) for data in TEXTS]
        finally:
            await transport.close()

    for data, stdout in asyncio.run(scenario()):
        assert stdout == data.decode() + "rc\n", data


@pytest.mark.slow  # about a minute: a small fleet behind relays, every row of the benchmark
def test_network_benchmark_measures_every_row(tmp_path: Path) -> None:
    argv = ["--quick", "--network", "rtt=20ms", "--no-latency", "--label", "smoke", "--out", str(tmp_path)]
    assert network_main(argv) == 0
    [doc] = tmp_path.glob("*-smoke-network.json")
    results = json.loads(doc.read_text())
    assert results["checks"] == []
    [cell] = results["cells"]
    rows = {line["row"]: line for line in cell["summary"]}
    idle, first, once = rows["watch, idle pass"], rows["watch, first pass"], rows["--once (cron)"]
    assert (idle["max_setups_per_host"], idle["commands_per_host"], idle["max_channels_per_host"]) == (0, 1, 1)
    assert (first["max_setups_per_host"], first["commands_per_host"]) == (1, 1)
    assert (once["max_setups_per_host"], once["commands_per_host"], once["max_channels_per_host"]) == (1, 1, 1)
    assert rows["watch before issue 20"]["max_setups_per_host"] == 1
    assert rows["naive `per_host`"]["commands_per_host"] == 3  # one per running run: 6 over 2 hosts
    steps = {c["step"]: c["turns"] for c in cell["costs"]}
    assert steps["a command, no stdin (channel open, exec)"] == 2
    assert steps["a command, 200 B of stdin sent after the exec (before issue 20)"] == 3
    assert (tmp_path / doc.name.replace(".json", ".md")).read_text().count("| watch, idle pass |") == 1
