"""One SSH connection to a host (with its jump hops and a lazy SFTP client), reopened on demand,
and one command run on it with its output capped (``execute``). ``backends.ssh`` builds the
transport on top; ``sshconfig`` opens the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex

from reconciler.backends.asyncssh_quiet import asyncssh
from reconciler.backends.base import Completed
from reconciler.backends.capped import read_capped
from reconciler.backends.sshconfig import open_connection
from reconciler.errors import TransportError
from reconciler.model.config import SshOptions


def text(data: object) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return data if isinstance(data, str) else ""


class Link:
    """One SSH connection to a host (plus its jump hops and lazy SFTP client), reopened on demand."""

    def __init__(
        self,
        options: SshOptions,
        *,
        connect_timeout: float | None,
        max_sessions: int,
        keepalive_interval: float | None,
    ) -> None:
        self.options = options
        self.connect_timeout = connect_timeout
        self.keepalive_interval = keepalive_interval
        self.sessions = asyncio.Semaphore(max_sessions)
        self.connects = 0
        self.closed = False
        self._lock = asyncio.Lock()
        self._conn: asyncssh.SSHClientConnection | None = None
        self._hops: list[asyncssh.SSHClientConnection] = []
        self._sftp: tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient] | None = None
        self._sftp_lock = asyncio.Lock()
        self.no_sftp: tuple[asyncssh.SSHClientConnection, str] | None = None
        """The connection whose server refused the SFTP subsystem, and why (files then go over exec)."""

    def _live(self) -> asyncssh.SSHClientConnection | None:
        conn = self._conn
        return conn if conn is not None and not conn.is_closed() else None

    async def connection(self) -> asyncssh.SSHClientConnection:
        """The open connection; connects (one attempt) when there is none or it dropped."""
        if self.closed:
            raise TransportError(f"ssh connection to {self.options.host} was closed")
        if (conn := self._live()) is not None:
            return conn
        async with self._lock:
            if (conn := self._live()) is not None:
                return conn
            self._drop()
            self._conn, self._hops = await open_connection(
                self.options,
                connect_timeout=self.connect_timeout,
                keepalive_interval=self.keepalive_interval,
            )
            self.connects += 1
            return self._conn

    async def sftp(self) -> asyncssh.SFTPClient | None:
        """The connection's SFTP client, started on first use (one per connection); ``None`` when
        the server has no SFTP subsystem (remembered for the connection: ``no_sftp``)."""
        conn = await self.connection()
        async with self._sftp_lock:
            if self.no_sftp is not None and self.no_sftp[0] is conn:
                return None
            if self._sftp is None or self._sftp[0] is not conn:
                try:
                    client = await conn.start_sftp_client()
                except (asyncssh.ChannelOpenError, asyncssh.ProcessError, asyncssh.SFTPError) as exc:
                    if conn.is_closed():
                        raise
                    self.no_sftp = (conn, str(exc) or type(exc).__name__)
                    return None
                self._sftp = (conn, client)
            return self._sftp[1]

    def discard(self, conn: asyncssh.SSHClientConnection) -> None:
        """Forget a connection that failed mid-call, so the next call reconnects."""
        if self._conn is conn:
            self._drop()

    def reset_sftp(self) -> None:
        """Forget a broken SFTP client; the next transfer starts a new one."""
        if self._sftp is not None:
            with contextlib.suppress(Exception):
                self._sftp[1].exit()
            self._sftp = None

    def _drop(self) -> None:
        self.reset_sftp()
        for conn in [self._conn, *reversed(self._hops)]:
            if conn is not None:
                conn.close()
        self._conn, self._hops = None, []

    async def close(self) -> None:
        self.closed = True
        conns = [c for c in [self._conn, *self._hops] if c is not None]
        self._drop()
        for conn in conns:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5)


async def execute_bytes(
    conn: asyncssh.SSHClientConnection, script: str, stdin: bytes | None, limit: float | None, cap: int
) -> tuple[int, bytes, bytes]:
    """Run one command; its exit status, stdout and stderr, each stream read up to ``cap`` bytes
    (past it: ``OutputTooLarge``, the command killed). The target is not trusted to stop talking."""
    process = await conn.create_process("sh -c " + shlex.quote(script), encoding=None)

    async def talk() -> tuple[bytes, bytes, int | None]:
        if stdin:
            process.stdin.write(stdin)
        process.stdin.write_eof()
        readers = [
            asyncio.ensure_future(read_capped(process.stdout.read, cap, "command output")),
            asyncio.ensure_future(read_capped(process.stderr.read, cap, "command error output")),
        ]
        try:
            out, err = await asyncio.gather(*readers)
        finally:
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        result = await process.wait()
        return out, err, result.returncode

    try:
        out, err, returncode = await asyncio.wait_for(talk(), limit)
    finally:
        if process.returncode is None:  # timed out, cancelled or too talkative: stop it, as LocalTransport does
            with contextlib.suppress(OSError, asyncssh.Error):
                process.kill()  # a "signal" request: OpenSSH kills the command's process group
        process.close()  # never wait for the close: a command that ignores it would hang us
    if returncode is None:
        raise asyncssh.ConnectionLost("connection lost before the command reported an exit status")
    return returncode, out, err


async def execute(
    conn: asyncssh.SSHClientConnection, script: str, stdin: bytes | None, limit: float | None, cap: int
) -> tuple[Completed, int]:
    """Run one command; returns it and the bytes it moved (stdin, stdout, stderr)."""
    returncode, out, err = await execute_bytes(conn, script, stdin, limit, cap)
    moved = len(stdin or b"") + len(out) + len(err)
    return Completed(returncode, text(out), text(err)), moved


__all__ = ["Link", "execute", "execute_bytes", "text"]
