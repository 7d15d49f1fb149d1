"""A delaying TCP relay on loopback: the benchmark's network between the controller and its hosts.

This machine's kernel has no ``netem`` queueing discipline (``tc qdisc add dev lo root netem
delay 25ms`` answers "Specified qdisc kind is unknown", even inside a network namespace), so the
delay is added in user space: one relay port in front of each SSH server, on 127.0.0.1, forwarding
to the server's port. Every chunk read from one side is written to the other ``rtt / 2`` later (one
way), plus a jitter drawn uniformly from ``[0, jitter]``; with probability ``stall`` a chunk waits
``stall_ms`` more (uniform between its bounds, 200-500 ms by default). True packet loss cannot be
emulated at the TCP level (the kernels at both ends see a lossless loopback stream): a stall stands
for a lost segment and its retransmission (Linux's minimum retransmission timeout is 200 ms).
Bytes never overtake each other (a TCP stream is ordered): a chunk is delivered no earlier than
the one before it in the same direction, so a stall holds back what follows, as a lost segment
does (head-of-line blocking). On a kernel with netem, ``tc qdisc add dev lo root netem delay 25ms
5ms loss 1%`` (on a dedicated address or namespace) would do the same below TCP.

The relays run in a helper process (``python -m benchmarks.relay serve``), not in the measured
controller, so its CPU time stays its own. A new connection costs its TCP handshake too: the
relay opens the upstream connection half an RTT after accepting (the SYN's way), and delivers
nothing from the client before one and a half RTTs (the SYN-ACK's way back, then the data's).

The helper reads commands on stdin and answers one JSON line each on stdout: ``stats`` (per
relay: TCP connections accepted and open, bytes each way, chunks, stalls, and *turns*: the round
trips as the wire sees them: a TCP handshake, and every time the server sent something after new
data from the client had reached it), ``net`` (change the network's shape from now on: the
benchmark times an exchange at RTT 0 and at RTT R to find how many round trips it waited for),
``trace NAME on|off`` (record a relay's chunks, for a timeline) and ``drop NAME`` (abort the
relay's open connections at once, as a network failure or a restarted server would). ``Relays``
is the parent side.

Turns are an upper bound on the round trips the client waited for: the wire cannot tell whether
the server waited for what reached it. A command's end of input (sent by the client as soon as the
server accepted the command) reaches the server while a slow command still runs, and the output
that follows counts as one more turn; so does a window adjustment arriving during a long
download. The exact count comes from timing: (time at RTT R - time at RTT 0) / R.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

READY_TIMEOUT = 30.0
CHUNK = 65536


# --------------------------------------------------------------------------- the network's shape


@dataclass(frozen=True)
class Network:
    """What the relays add: round-trip time, jitter, stalls (seconds; ``stall`` a probability per chunk)."""

    rtt: float = 0.05
    jitter: float = 0.0
    stall: float = 0.0
    stall_min: float = 0.2
    stall_max: float = 0.5
    seed: int = 20

    @classmethod
    def parse(cls, text: str) -> Network:
        """``"rtt=50ms,jitter=5ms,stall=0.01,stall_ms=200-500,seed=1"`` (times in ms or s)."""
        fields: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, _, value = part.partition("=")
            key = key.strip().lower()
            if key in ("rtt", "jitter"):
                fields[key] = _seconds(value)
            elif key == "stall":
                fields["stall"] = float(value)
                if not 0.0 <= fields["stall"] <= 1.0:
                    raise ValueError(f"stall={value}: a probability per chunk, 0 to 1")
            elif key == "stall_ms":
                low, _, high = value.partition("-")
                fields["stall_min"] = float(low) / 1e3
                fields["stall_max"] = float(high or low) / 1e3
            elif key == "seed":
                fields["seed"] = int(value)
            else:
                raise ValueError(f"unknown network setting {key!r} (rtt, jitter, stall, stall_ms, seed)")
        net = cls(**fields)
        if net.rtt < 0 or net.jitter < 0 or not 0 <= net.stall_min <= net.stall_max:
            raise ValueError(f"network settings out of range: {text!r}")
        return net

    def describe(self) -> str:
        text = f"RTT {self.rtt * 1e3:g} ms"
        if self.jitter:
            text += f", jitter 0-{self.jitter * 1e3:g} ms each way"
        if self.stall:
            text += (
                f", stalls (standing for retransmissions) on {self.stall:.1%} of chunks, "
                f"{self.stall_min * 1e3:g}-{self.stall_max * 1e3:g} ms"
            )
        return text

    def argv(self) -> list[str]:
        return [f"--{k.replace('_', '-')}={v}" for k, v in asdict(self).items()]


def _seconds(value: str) -> float:
    found = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s)?\s*", value)
    if not found:
        raise ValueError(f"{value!r} is not a time (e.g. 50ms or 0.05s)")
    number = float(found.group(1))
    return number / 1e3 if found.group(2) == "ms" else number


# --------------------------------------------------------------------------- helper side


@dataclass
class _Stats:
    connections: int = 0
    open: int = 0
    bytes_up: int = 0
    """client -> server"""
    bytes_down: int = 0
    chunks: int = 0
    stalls: int = 0
    turns: int = 0


@dataclass
class _Relay:
    name: str
    upstream: tuple[str, int]
    net: Network
    """The network's shape now (``net`` on stdin changes it for what follows)."""
    stats: _Stats = field(default_factory=_Stats)
    live: set[asyncio.Transport] = field(default_factory=set)
    trace: list[tuple[float, str, int, float]] | None = None
    """While tracing: (time read, direction, bytes, time delivered) of every chunk."""


class _Conn:
    """One relayed TCP connection: two directions sharing the turn counter."""

    def __init__(self, relay: _Relay, rng: random.Random) -> None:
        self.relay = relay
        self.rng = rng
        self.unanswered: list[float] = []
        """When the client's chunks since the server's last answer reach (reached) the server."""

    def delay(self) -> float:
        net = self.relay.net
        extra = net.rtt / 2 + (self.rng.uniform(0, net.jitter) if net.jitter else 0.0)
        if net.stall and self.rng.random() < net.stall:
            self.relay.stats.stalls += 1
            extra += self.rng.uniform(net.stall_min, net.stall_max)
        return extra

    def seen(self, direction: str, size: int, now: float, at: float) -> None:
        """A chunk read at ``now``, delivered at ``at``: counted, and a turn when the server
        speaks after new client data reached it."""
        stats = self.relay.stats
        stats.chunks += 1
        if direction == "up":
            stats.bytes_up += size
            self.unanswered.append(at)
        else:
            stats.bytes_down += size
            if any(reached <= now for reached in self.unanswered):
                stats.turns += 1
                self.unanswered = [reached for reached in self.unanswered if reached > now]

    async def pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str, floor: float = 0.0
    ) -> None:
        """Copy one direction, each chunk delayed; nothing delivered before ``floor``."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        last_at = floor

        async def deliver() -> None:
            while True:
                at, data = await queue.get()
                wait = at - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    with contextlib.suppress(OSError):
                        if writer.can_write_eof():
                            writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                data = await reader.read(CHUNK)
                now = loop.time()
                if data:
                    at = max(now + self.delay(), last_at)
                    self.seen(direction, len(data), now, at)
                    if self.relay.trace is not None:
                        self.relay.trace.append((now, direction, len(data), at))
                else:
                    at = max(now + self.relay.net.rtt / 2, last_at)
                last_at = at
                queue.put_nowait((at, data))
                if not data:
                    break
            await sender
        except (OSError, asyncio.IncompleteReadError):
            sender.cancel()
            raise


async def _handle(relay: _Relay, rng: random.Random, reader: asyncio.StreamReader, writer: Any) -> None:
    net = relay.net
    relay.stats.connections += 1
    relay.stats.turns += 1  # the TCP handshake
    relay.stats.open += 1
    relay.live.add(writer.transport)
    accepted = asyncio.get_running_loop().time()
    up_writer: asyncio.StreamWriter | None = None
    try:
        await asyncio.sleep(net.rtt / 2)  # the SYN on its way: the server accepts then
        up_reader, up_writer = await asyncio.open_connection(*relay.upstream)
        relay.live.add(up_writer.transport)
        conn = _Conn(relay, rng)
        pipes = [
            asyncio.create_task(conn.pipe(reader, up_writer, "up", floor=accepted + 1.5 * net.rtt)),
            asyncio.create_task(conn.pipe(up_reader, writer, "down")),
        ]
        done, pending = await asyncio.wait(pipes, return_when=asyncio.FIRST_EXCEPTION)
        if any(not t.cancelled() and t.exception() is not None for t in done):
            for task in pending:  # one side broke: the whole connection goes
                task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)
    except OSError:
        pass
    finally:
        relay.stats.open -= 1
        for w in (writer, up_writer):
            if w is not None:
                relay.live.discard(w.transport)
                with contextlib.suppress(Exception):
                    w.close()


async def _serve(net: Network, targets: list[tuple[str, str, int]]) -> None:
    rng = random.Random(net.seed)
    relays: dict[str, _Relay] = {}
    servers = []
    for name, host, port in targets:
        relay = _Relay(name, (host, port), net)
        relays[name] = relay

        async def handle(reader: asyncio.StreamReader, writer: Any, relay: _Relay = relay) -> None:
            with contextlib.suppress(asyncio.CancelledError):  # stopping: asyncio 3.11 would log it
                await _handle(relay, rng, reader, writer)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        print(json.dumps({"name": name, "port": server.sockets[0].getsockname()[1]}), flush=True)
    print(json.dumps({"ready": True}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        words = line.decode().split()
        if words[:1] == ["stats"]:
            answer: dict[str, Any] = {n: asdict(r.stats) for n, r in relays.items()}
        elif words[:1] == ["net"]:  # net {"rtt": ...}: the network from now on, every relay
            shape = Network(**json.loads(line.decode().split(None, 1)[1]))
            for relay in relays.values():
                relay.net = shape
            answer = {"net": asdict(shape)}
        elif words[:1] == ["trace"]:  # trace NAME on|off: off answers the chunks seen
            relay = relays[words[1]]
            answer = {"trace": relay.trace or []}
            relay.trace = [] if words[2:] == ["on"] else None
        elif words[:1] == ["drop"]:
            dropped = 0
            for name in words[1:] or list(relays):
                for transport in list(relays[name].live):
                    transport.abort()
                    dropped += 1
            answer = {"dropped": dropped}
        else:
            answer = {"error": f"unknown command {line.decode().strip()!r}"}
        print(json.dumps(answer), flush=True)
    for server in servers:
        server.close()
    for relay in relays.values():
        for transport in list(relay.live):
            transport.abort()


def serve_main(argv: list[str]) -> int:
    """``serve [--rtt=S --jitter=S --stall=P --stall-min=S --stall-max=S --seed=N] NAME=HOST:PORT ...``."""
    settings: dict[str, Any] = {}
    targets = []
    for arg in argv:
        if arg.startswith("--"):
            key, _, value = arg[2:].partition("=")
            settings[key.replace("-", "_")] = int(value) if key == "seed" else float(value)
        else:
            name, _, where = arg.partition("=")
            host, _, port = where.rpartition(":")
            targets.append((name, host or "127.0.0.1", int(port)))
    asyncio.run(_serve(Network(**settings), targets))
    return 0


# --------------------------------------------------------------------------- parent side


@dataclass
class Relays:
    """One relay per upstream ``name -> (host, port)``, all in one helper process."""

    network: Network
    upstream: dict[str, tuple[str, int]]
    ports: dict[str, int] = field(default_factory=dict)
    helper: subprocess.Popen[str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Relays:
        argv = [sys.executable, "-m", "benchmarks.relay", "serve", *self.network.argv()]
        argv += [f"{name}={host}:{port}" for name, (host, port) in self.upstream.items()]
        root = Path(__file__).resolve().parent.parent
        self.helper = subprocess.Popen(
            argv, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        assert self.helper.stdout is not None
        for line in self.helper.stdout:
            doc = json.loads(line)
            if doc.get("ready"):
                return self
            self.ports[doc["name"]] = int(doc["port"])
        self.stop()
        raise RuntimeError("the relay helper exited before it was ready")

    def _ask(self, command: str) -> dict[str, Any]:
        with self._lock:
            assert self.helper is not None and self.helper.stdin is not None and self.helper.stdout is not None
            self.helper.stdin.write(command + "\n")
            self.helper.stdin.flush()
            answer: dict[str, Any] = json.loads(self.helper.stdout.readline())
            return answer

    def stats(self) -> dict[str, dict[str, int]]:
        """Per relay, cumulative: connections, open, bytes_up, bytes_down, chunks, stalls, turns."""
        return self._ask("stats")

    def set_network(self, network: Network) -> None:
        """Change the network's shape for every chunk read from now on (in flight ones keep theirs)."""
        self._ask("net " + json.dumps(asdict(network)))
        self.network = network

    def trace(self, name: str, on: bool) -> list[tuple[float, str, int, float]]:
        """Start (``on``) or stop recording relay ``name``'s chunks; stopping returns them:
        (time read, direction ``up``/``down``, bytes, time delivered), on the helper's clock."""
        return [tuple(x) for x in self._ask(f"trace {name} {'on' if on else 'off'}")["trace"]]  # type: ignore[misc]

    def drop(self, *names: str) -> int:
        """Abort the open connections of these relays (all without names); how many sockets."""
        return int(self._ask(" ".join(["drop", *names]))["dropped"])

    def stop(self) -> None:
        helper, self.helper = self.helper, None
        if helper is None:
            return
        for stream in (helper.stdin, helper.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            helper.wait(timeout=10)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()


def delta(after: dict[str, dict[str, int]], before: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Per relay, ``after - before`` of the cumulative counters (``open`` as it is after)."""
    out = {}
    for name, now in after.items():
        then = before.get(name, {})
        out[name] = {k: v if k == "open" else v - then.get(k, 0) for k, v in now.items()}
    return out


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "serve":
        sys.exit(serve_main(sys.argv[2:]))
    print("usage: python -m benchmarks.relay serve [--rtt=S ...] NAME=HOST:PORT ...", file=sys.stderr)
    sys.exit(2)
