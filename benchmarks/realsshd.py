"""A real OpenSSH server on 127.0.0.1 for the network benchmark, where one can be started.

``Sshd.start`` needs root (sshd runs sessions as the logged-in user: here the invoking user, root,
with a key only: ``PermitRootLogin prohibit-password``) and ``/usr/sbin/sshd``; elsewhere it
returns a reason and the benchmark measures the in-process asyncssh servers only. The server has
its own throwaway host key, accepts the fleet's client key (``AuthorizedKeysFile``), serves SFTP
(``internal-sftp``) and runs in a session of its own, stopped by its process group at the end
(a connection's own process ends with its client). Commands run under the user's login shell,
as on a real host.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
AuthorizedKeysFile {authorized_keys}
PidFile none
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel ERROR
MaxStartups 200:30:300
Subsystem sftp internal-sftp
"""


@dataclass
class Sshd:
    scratch: Path
    authorized_keys: Path
    port: int = 0
    public_key: str = ""
    """The host key, ``type base64`` (for a ``known_hosts`` line)."""
    extra_config: str = ""
    """More ``sshd_config`` lines (e.g. ``SetEnv HOME=...``: a home of its own per server)."""
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @staticmethod
    def unavailable() -> str | None:
        """Why no sshd can be started here (``None``: it can)."""
        if not SSHD.exists():
            return f"{SSHD} is missing"
        if os.geteuid() != 0:
            return "not root (sshd needs root to start sessions)"
        return None

    def start(self) -> Sshd:
        self.scratch.mkdir(parents=True, exist_ok=True)
        host_key = self.scratch / "sshd_host_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
        self.public_key = " ".join(host_key.with_name(host_key.name + ".pub").read_text().split()[:2])
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        config = self.scratch / "sshd_config"
        text = CONFIG.format(port=self.port, host_key=host_key, authorized_keys=self.authorized_keys)
        text += self.extra_config
        config.write_text(text + "PerSourcePenalties no\n")  # OpenSSH >= 9.8; dropped where unknown
        if subprocess.run([str(SSHD), "-t", "-f", str(config)], capture_output=True, check=False).returncode:
            config.write_text(text)
        log = (self.scratch / "sshd.log").open("wb")
        self.proc = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 20
        while not _listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sshd did not start: {(self.scratch / 'sshd.log').read_text()[-1000:]}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
