"""In-process asyncssh servers on 127.0.0.1: the benchmark's SSH "hosts", no sshd and no root needed.

One server per target, each on its own port of 127.0.0.1, with its own home directory (``HOME``
and the working directory of the commands it runs). The servers live in helper processes
(``python -m benchmarks.sshfleet serve``), never in the measured process: the controller's CPU
time and memory stay its own, and the targets' CPU (the server plus the commands it ran) is read
from ``/proc/<pid>/stat`` of the helpers. Several helpers share the targets (one per core by
default) so that a 16-core machine is not held back by one server loop.

A command runs as ``/bin/sh -c <command>`` in a new session, as this user, with this environment
(no login shell): stdin, stdout, stderr and the exit status are pumped by hand, because
``process.redirect`` to asyncio streams loses output in asyncssh 2.24 (see the appendix of the
test-infrastructure reference). SFTP is asyncssh's own server (``sftp_factory=True``).

``SshFleet`` (the parent side) writes the keys and ``known_hosts``, starts the helpers, reads the
ports they bound, and stops them by pid. With a ``network`` (``benchmarks.relay``), a delaying
relay stands in front of every server and the targets are reached through it (``port_of``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.relay import Network, Relays
from reconciler.backends.asyncssh_quiet import asyncssh
from reconciler.model.config import SshOptions

READY_TIMEOUT = 60.0


# --------------------------------------------------------------------------- server side


class _Server(asyncssh.SSHServer):
    """Accepts the fleet's client key for any user name (the commands run as this process's user)."""

    def begin_auth(self, username: str) -> bool:
        del username
        return True


def _handler(home: str) -> Any:
    env = {**os.environ, "HOME": home}

    async def handle(process: asyncssh.SSHServerProcess[bytes]) -> None:
        command = process.command or "true"
        proc = await asyncio.create_subprocess_shell(
            command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            cwd=home,
            env=env,
        )

        async def pump_in() -> None:
            assert proc.stdin is not None
            try:
                while data := await process.stdin.read(65536):
                    proc.stdin.write(data)
                    await proc.stdin.drain()
            except (OSError, asyncssh.Error):
                pass
            finally:
                with contextlib.suppress(OSError):
                    proc.stdin.close()

        async def pump_out(src: asyncio.StreamReader | None, dst: asyncssh.SSHWriter[bytes]) -> None:
            assert src is not None
            while data := await src.read(65536):
                with contextlib.suppress(OSError, asyncssh.Error):
                    dst.write(data)

        feeder = asyncio.create_task(pump_in())
        await asyncio.gather(pump_out(proc.stdout, process.stdout), pump_out(proc.stderr, process.stderr))
        rc = await proc.wait()
        feeder.cancel()
        process.exit(rc if rc >= 0 else 128 - rc)

    return handle


async def _serve(key_dir: Path, targets: list[tuple[str, str]]) -> None:
    host_key = asyncssh.read_private_key(str(key_dir / "host_ed25519"))
    authorized = asyncssh.import_authorized_keys((key_dir / "authorized_keys").read_text())
    servers = []
    for name, home in targets:
        server = await asyncssh.create_server(
            _Server,
            "127.0.0.1",
            0,
            server_host_keys=[host_key],
            authorized_client_keys=authorized,
            process_factory=_handler(home),
            sftp_factory=True,
            encoding=None,
            allow_scp=False,
        )
        port = server.sockets[0].getsockname()[1]
        servers.append(server)
        print(json.dumps({"name": name, "port": port}), flush=True)
    print(json.dumps({"ready": True}), flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # The parent closing our stdin also stops us (the parent died without cleaning up).
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    eof = asyncio.create_task(reader.read())
    await asyncio.wait([eof, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    for server in servers:
        server.close()


def serve_main(argv: list[str]) -> int:
    """``serve KEY_DIR NAME=HOME ...``: serve until stdin closes or SIGTERM."""
    key_dir = Path(argv[0])
    targets = [tuple(a.split("=", 1)) for a in argv[1:]]
    asyncio.run(_serve(key_dir, [(n, h) for n, h in targets]))
    return 0


# --------------------------------------------------------------------------- parent side


@dataclass
class SshHost:
    """One target's server: where to connect, and the home its commands run in."""

    name: str
    port: int
    home: Path


@dataclass
class SshFleet:
    """H in-process asyncssh servers spread over ``procs`` helper processes."""

    scratch: Path
    names: list[str]
    procs: int = 1
    network: Network | None = None
    """Put a delaying relay in front of every server (``benchmarks.relay``); targets go through it."""
    hosts: dict[str, SshHost] = field(default_factory=dict)
    helpers: list[subprocess.Popen[str]] = field(default_factory=list)
    relays: Relays | None = None

    @property
    def key_path(self) -> Path:
        return self.scratch / "keys" / "client_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.scratch / "keys" / "known_hosts"

    @property
    def empty_config(self) -> Path:
        return self.scratch / "keys" / "ssh_config"

    def start(self) -> SshFleet:
        keys = self.scratch / "keys"
        keys.mkdir(parents=True, exist_ok=True)
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        host_key.write_private_key(str(keys / "host_ed25519"))
        client = asyncssh.generate_private_key("ssh-ed25519")
        client.write_private_key(str(self.key_path))
        self.key_path.chmod(0o600)
        client.write_public_key(str(keys / "authorized_keys"))
        self.empty_config.write_text("")
        homes = {}
        for name in self.names:
            homes[name] = self.scratch / "homes" / name
            homes[name].mkdir(parents=True, exist_ok=True)
        groups = [self.names[i :: self.procs] for i in range(min(self.procs, len(self.names)))]
        root = Path(__file__).resolve().parent.parent
        for group in groups:
            argv = [sys.executable, "-m", "benchmarks.sshfleet", "serve", str(keys)]
            argv += [f"{n}={homes[n]}" for n in group]
            helper = subprocess.Popen(
                argv, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
            )
            self.helpers.append(helper)
            assert helper.stdout is not None
            for line in helper.stdout:
                doc = json.loads(line)
                if doc.get("ready"):
                    break
                self.hosts[doc["name"]] = SshHost(doc["name"], int(doc["port"]), homes[doc["name"]])
            else:
                self.stop()
                raise RuntimeError("an asyncssh server helper exited before it was ready")
        if self.network is not None:
            upstream = {n: ("127.0.0.1", h.port) for n, h in self.hosts.items()}
            self.relays = Relays(self.network, upstream).start()
        public = host_key.export_public_key("openssh").decode().split()[:2]
        ports = [h.port for h in self.hosts.values()] + list(self.relays.ports.values() if self.relays else [])
        lines = [f"[127.0.0.1]:{port} {' '.join(public)}" for port in ports]
        self.known_hosts.write_text("\n".join(lines) + "\n")
        return self

    def port_of(self, name: str) -> int:
        """Where target ``name`` is reached: its relay's port with a network, else its server's."""
        if self.relays is not None:
            return self.relays.ports[name]
        return self.hosts[name].port

    def target_yaml(self, name: str, root: str, max_runs: int) -> str:
        """The ``config/reconciler.yaml`` block of target ``name``."""
        user = os.environ.get("USER") or _user()
        return (
            f"  {name}:\n    kind: ssh\n    host: 127.0.0.1\n    port: {self.port_of(name)}\n    user: {user}\n"
            f"    identity_file: {self.key_path}\n    known_hosts: {self.known_hosts}\n"
            f"    config_file: {self.empty_config}\n    root: {root}\n    max_runs: {max_runs}\n"
        )

    def options(self, name: str) -> SshOptions:
        """How the product's SSH transport reaches target ``name``."""
        return SshOptions(
            host="127.0.0.1",
            port=self.port_of(name),
            user=os.environ.get("USER") or _user(),
            identity_file=str(self.key_path),
            known_hosts=str(self.known_hosts),
            config_file=str(self.empty_config),
        )

    def cpu_seconds(self) -> float:
        """CPU time of the helpers and the commands they ran and reaped (user + system)."""
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for helper in self.helpers:
            with contextlib.suppress(OSError, ValueError, IndexError):
                data = Path(f"/proc/{helper.pid}/stat").read_bytes()
                rest = data[data.rfind(b")") + 2 :].split()
                total += sum(int(rest[i]) for i in (11, 12, 13, 14)) / tick
        return total

    def stop(self) -> None:
        if self.relays is not None:
            self.relays.stop()
        for helper in self.helpers:
            if helper.poll() is None:
                with contextlib.suppress(OSError):
                    helper.terminate()
            try:
                helper.wait(timeout=10)
            except subprocess.TimeoutExpired:
                helper.kill()
                helper.wait()
            for stream in (helper.stdin, helper.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        self.helpers.clear()


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        sys.exit(serve_main(sys.argv[2:]))
    print("usage: python -m benchmarks.sshfleet serve KEY_DIR NAME=HOME ...", file=sys.stderr)
    sys.exit(2)
