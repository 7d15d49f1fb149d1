"""Counters around asyncssh and the SSH transport, and ``reconcile --once`` run with them.

``counting()`` counts, in this process (every thread), the SSH connection setups
(``sshlink.open_connection``), the SSH channel opens (``SSHClientConnection.create_session``: one
per command, one per SFTP client) and the remote commands (``SshTransport.run`` and its
byte-mode twin) while it is open. ``python -m benchmarks.netcount once PROJECT OUT`` is
``reconcile -C PROJECT --once`` as cron runs it, a fresh process, with the counters installed and
their totals written to ``OUT`` (JSON); it imports nothing else of the benchmark, so the process
costs what the CLI's costs.
"""

from __future__ import annotations

import contextlib
import json
import resource
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Counts:
    """What the controller did over SSH."""

    setups: int = 0
    """SSH connections opened."""
    channels: int = 0
    """SSH channels opened (commands and SFTP)."""
    commands: int = 0
    """Remote commands."""

    def copy(self) -> Counts:
        return Counts(self.setups, self.channels, self.commands)

    def minus(self, other: Counts) -> Counts:
        return Counts(self.setups - other.setups, self.channels - other.channels, self.commands - other.commands)

    def plus(self, other: Counts) -> Counts:
        return Counts(self.setups + other.setups, self.channels + other.channels, self.commands + other.commands)


COUNTS = Counts()
"""The running totals (read them with ``COUNTS.copy()`` before and after)."""


@contextlib.contextmanager
def counting() -> Iterator[Counts]:
    """Count SSH setups, channel opens and commands in this process while open."""
    from reconciler.backends import ssh, sshlink
    from reconciler.backends.asyncssh_quiet import asyncssh

    conn_cls = asyncssh.SSHClientConnection
    create_session, open_connection = conn_cls.create_session, sshlink.open_connection
    run, run_bytes = ssh.SshTransport.run, ssh.SshTransport._run_bytes

    async def counted_session(self: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS.channels += 1
        return await create_session(self, *args, **kwargs)

    async def counted_open(*args: Any, **kwargs: Any) -> Any:
        COUNTS.setups += 1
        return await open_connection(*args, **kwargs)

    async def counted_run(self: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS.commands += 1
        return await run(self, *args, **kwargs)

    async def counted_run_bytes(self: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS.commands += 1
        return await run_bytes(self, *args, **kwargs)

    conn_cls.create_session = counted_session  # type: ignore[method-assign]
    sshlink.open_connection = counted_open  # type: ignore[assignment]
    ssh.SshTransport.run = counted_run  # type: ignore[method-assign]
    ssh.SshTransport._run_bytes = counted_run_bytes  # type: ignore[method-assign]
    try:
        yield COUNTS
    finally:
        conn_cls.create_session = create_session  # type: ignore[method-assign]
        sshlink.open_connection = open_connection
        ssh.SshTransport.run = run  # type: ignore[method-assign]
        ssh.SshTransport._run_bytes = run_bytes  # type: ignore[method-assign]


def once_main(argv: list[str]) -> int:
    """``once PROJECT OUT``: the CLI's ``--once`` with the counters installed; totals to ``OUT``."""
    project, out = argv
    code = 0
    with counting() as counts:
        from reconciler.cli import main as cli

        try:
            cli(["-C", project, "--once"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    usage = resource.getrusage(resource.RUSAGE_SELF)
    doc = {
        "setups": counts.setups,
        "channels": counts.channels,
        "commands": counts.commands,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "exit": code,
    }
    Path(out).write_text(json.dumps(doc))
    return code


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "once":
        sys.exit(once_main(sys.argv[2:]))
    print("usage: python -m benchmarks.netcount once PROJECT OUT", file=sys.stderr)
    sys.exit(2)
