"""SSH transport over asyncssh: one connection per host, reused for the whole pass (and, in watch
mode, from one pass to the next).

A ``--once`` pass opens one ``SshPool`` and closes it at the end; watch mode keeps one for its
lifetime (``targets.KeptConnections``). ``SshPool.transport`` hands out a ``SshTransport`` per
target, and targets with equal ``SshOptions`` share one connection.
Concurrent ``run`` calls share that connection, at most ``max_sessions`` channels at a time
(OpenSSH's default ``MaxSessions`` is 10; SFTP takes one more channel).

A command runs as ``sh -c <script>`` under the remote login shell. Its stdin, when short text
(``INLINE_STDIN_MAX``), travels inside the exec request (``printf %s '<stdin>' | sh -c <script>``)
rather than as channel data after the server confirmed it: a command then costs two round trips
(open the channel, exec) instead of three. On timeout or cancellation
the command's process group is killed (a "signal" channel request), like ``LocalTransport``
does; jobs started with ``setsid`` have their own group and are not touched. ``put``/``get`` use
one SFTP client per connection, started lazily; ``command_timeout`` bounds them too.
An sshd without the SFTP subsystem (no ``Subsystem sftp`` line: ``ssh host cmd`` works) is
served over the exec channel instead: ``put`` streams the file into ``cat`` with a byte-count
check and an atomic ``mv`` (as ``scripts.receive_stdin``), ``get`` reads it with ``cat`` after its
size; the connection remembers that SFTP is missing. If even that fails, the error names the
missing subsystem. ``commands`` counts ``run`` calls; ``bytes_transferred`` counts stdin, stdout
and stderr bytes of commands plus file bytes moved (as ``LocalTransport`` counts).

Failures come out as ``ConnectError`` (cannot connect, authentication, host key; see
``sshconfig``), ``CommandTimeout`` and ``TransportError`` (connection lost mid-command, SFTP
failure). A dropped connection is reopened by the next call, once; never inside the failing call.
This module, ``sshlink`` (the connection) and ``sshconfig`` (opening it) are the only ones that
use asyncssh (imported through ``asyncssh_quiet``).
"""

from __future__ import annotations

import asyncio
import shlex
import stat
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from reconciler.backends.asyncssh_quiet import asyncssh
from reconciler.backends.base import Completed
from reconciler.backends.capped import CHUNK, DEFAULT_OUTPUT_BYTES, too_large
from reconciler.backends.sshconfig import endpoint
from reconciler.backends.sshlink import Link, execute, execute_bytes, text
from reconciler.errors import CommandTimeout, OutputTooLarge, RefusedFile, RemoteFileMissing, TransportError
from reconciler.model.config import Policies, SshOptions

DEFAULT_MAX_SESSIONS = 8
INLINE_STDIN_MAX = 32 * 1024
"""Stdin up to this many bytes (UTF-8 text without NUL) is sent inside the exec request..."""
_COMMAND_MAX = 64 * 1024
"""... when the command it makes stays under this many bytes (quoted twice; the login shell gets
it as one argument, and Linux refuses an argument over 128 KiB)."""
_OPEN_RETRIES = 5
_TIMEOUTS = (asyncio.TimeoutError, TimeoutError)


def _sftp_path(remote: str) -> str:
    """SFTP starts in the home directory and does not expand ``~``."""
    if remote == "~":
        return "."
    return remote[2:] if remote.startswith("~/") else remote


def _shell_path(remote: str) -> str:
    """A remote path as a shell word (``~/x`` from ``$HOME``)."""
    if remote == "~":
        return '"$HOME"'
    if remote.startswith("~/"):
        return '"$HOME"/' + shlex.quote(remote[2:])
    return shlex.quote(remote)


def _inline(script: str, stdin: bytes | None) -> tuple[str, bytes | None]:
    """``script`` with short text ``stdin`` folded into it (piped in by ``printf``), and the stdin
    still to send on the channel: asyncssh sends channel data only once the server has answered
    the exec request, one more round trip; folded in, the command starts on the request itself."""
    if not stdin or len(stdin) > INLINE_STDIN_MAX or b"\0" in stdin:
        return script, stdin
    try:
        data = stdin.decode("utf-8")
    except UnicodeDecodeError:
        return script, stdin
    folded = f"printf %s {shlex.quote(data)} | sh -c {shlex.quote(script)}"
    if len(shlex.quote(folded).encode()) > _COMMAND_MAX:  # ``execute`` runs ``sh -c <folded>``
        return script, stdin
    return folded, None


@dataclass(frozen=True)
class _Bytes:
    """A finished command's exit status and binary output."""

    returncode: int
    stdout: bytes
    stderr: bytes


async def _sftp_get(sftp: asyncssh.SFTPClient, path: str, local: Path, cap: int | None) -> int:
    """Download a regular file of at most ``cap`` bytes: ``lstat`` first (a symlink or a device
    is refused), then the bytes counted as they arrive (the file may grow or be swapped)."""
    try:
        attrs = await sftp.lstat(path)
    except asyncssh.SFTPNoSuchFile as exc:
        raise RemoteFileMissing(f"{path} does not exist") from exc
    mode = attrs.permissions
    regular = stat.S_ISREG(mode) if mode is not None else attrs.type == asyncssh.FILEXFER_TYPE_REGULAR
    if not regular:
        raise RefusedFile(f"result file {path} is not a regular file")
    if cap is not None and (attrs.size or 0) > cap:
        raise RefusedFile(too_large("result file", cap))
    copied = 0
    async with sftp.open(path, "rb") as remote:
        with local.open("wb") as out:
            while True:
                data = await remote.read(CHUNK)
                chunk = data.encode() if isinstance(data, str) else data  # str only with an encoding
                if not chunk:
                    break
                copied += len(chunk)
                if cap is not None and copied > cap:
                    raise RefusedFile(too_large("result file", cap))
                out.write(chunk)
    return copied


class SshTransport:
    """The ``Transport`` of one target over a (possibly shared) SSH connection."""

    def __init__(self, link: Link, *, name: str, command_timeout: float | None, owns_link: bool) -> None:
        self.name = name
        self.commands = 0
        self.bytes_transferred = 0
        self._link = link
        self._command_timeout = command_timeout
        self._owns_link = owns_link

    @classmethod
    async def open(
        cls,
        options: SshOptions,
        *,
        connect_timeout: float | None = Policies.connect_timeout,
        command_timeout: float | None = Policies.command_timeout,
        name: str | None = None,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        keepalive_interval: float | None = None,
    ) -> SshTransport:
        """A transport with a connection of its own, connected now; ``close`` closes it."""
        link = Link(
            options,
            connect_timeout=connect_timeout,
            max_sessions=max_sessions,
            keepalive_interval=keepalive_interval,
        )
        transport = cls(link, name=name or options.host, command_timeout=command_timeout, owns_link=True)
        await transport.connect()
        return transport

    @property
    def connects(self) -> int:
        """How many times the underlying connection was opened (1 unless it dropped)."""
        return self._link.connects

    async def connect(self) -> None:
        """Open the connection now instead of on the first call (raises ``ConnectError``)."""
        await self._link.connection()

    def _where(self) -> str:
        return f"{self.name} ({endpoint(self._link.options)})"

    async def run(
        self, script: str, *, stdin: bytes | None = None, timeout: float | None = None, max_output: int | None = None
    ) -> Completed:
        """Run ``script`` with ``sh -c`` (under the remote login shell); any exit code returns.
        Its stdout and stderr are each read up to ``max_output`` bytes (``OutputTooLarge`` past it)."""
        limit = timeout if timeout is not None else self._command_timeout
        cap = DEFAULT_OUTPUT_BYTES if max_output is None else max_output
        self.commands += 1
        command, rest = _inline(script, stdin)
        inlined = len(stdin or b"") - len(rest or b"")
        for refused in range(_OPEN_RETRIES + 1):
            async with self._link.sessions:
                conn = await self._link.connection()
                try:
                    done, moved = await execute(conn, command, rest, limit, cap)
                except _TIMEOUTS as exc:
                    raise CommandTimeout(f"command on {self._where()} did not finish within {limit}s") from exc
                except OutputTooLarge as exc:
                    raise OutputTooLarge(f"{self._where()}: {exc}; the read was aborted") from exc
                except asyncssh.ChannelOpenError as exc:
                    # The server refused a session (sshd's MaxSessions counts channels it has not
                    # finished closing yet): nothing ran, so waiting a moment and asking again is safe.
                    if refused == _OPEN_RETRIES:
                        raise TransportError(f"command on {self._where()} failed: {exc}") from exc
                except (asyncssh.Error, OSError) as exc:
                    self._link.discard(conn)
                    raise TransportError(f"command on {self._where()} failed: {exc}") from exc
                else:
                    self.bytes_transferred += moved + inlined
                    return done
            await asyncio.sleep(0.05 * (refused + 1))
        raise TransportError(f"command on {self._where()} failed: no session")  # not reached

    async def put(self, local: Path, remote: str) -> None:
        """Copy the local file ``local`` to ``remote`` (relative paths and ``~/`` from the home)."""
        size = await self._transfer(local, remote, upload=True)
        self.bytes_transferred += size

    async def get(self, remote: str, local: Path, *, max_bytes: int | None = None) -> None:
        """Copy the remote file ``remote`` to the local path ``local``: only a regular file (an
        ``lstat`` on the target: never through a symlink) of at most ``max_bytes``, counted again
        while receiving (the target may lie); ``RefusedFile`` otherwise."""
        size = await self._transfer(local, remote, upload=False, cap=max_bytes)
        self.bytes_transferred += size

    async def _transfer(self, local: Path, remote: str, *, upload: bool, cap: int | None = None) -> int:
        what = f"put {local} -> {self.name}:{remote}" if upload else f"get {self.name}:{remote} -> {local}"
        try:
            sftp = await self._link.sftp()
            if sftp is None:
                return await self._over_exec(local, remote, upload=upload, what=what, cap=cap)
            if upload:
                await asyncio.wait_for(sftp.put(str(local), _sftp_path(remote)), self._command_timeout)
                return local.stat().st_size
            return await asyncio.wait_for(_sftp_get(sftp, _sftp_path(remote), local, cap), self._command_timeout)
        except _TIMEOUTS as exc:
            raise CommandTimeout(f"{what}: not done within {self._command_timeout}s") from exc
        except RemoteFileMissing as exc:
            raise RemoteFileMissing(f"{what}: {exc}") from exc
        except (asyncssh.Error, OSError) as exc:
            if isinstance(exc, asyncssh.SFTPConnectionLost) or not isinstance(exc, (asyncssh.SFTPError, OSError)):
                self._link.reset_sftp()  # the client broke, not just this file
            if self._link.no_sftp is not None:
                raise TransportError(
                    f"{what} failed over the exec channel (the server has no SFTP subsystem: "
                    f"{self._link.no_sftp[1]}): {exc}"
                ) from exc
            raise TransportError(f"{what} failed: {exc}") from exc

    async def _over_exec(self, local: Path, remote: str, *, upload: bool, what: str, cap: int | None = None) -> int:
        """A transfer over the exec channel, for a server without the SFTP subsystem."""
        missing = self._link.no_sftp[1] if self._link.no_sftp else "refused"
        path = _shell_path(remote)
        if upload:
            data = local.read_bytes()
            tmp = f"{path}.$$.part"
            script = (
                f'cat > {tmp} && [ "$(wc -c < {tmp})" -eq {len(data)} ] && mv -f {tmp} {path} '
                f"|| {{ rm -f {tmp}; echo 'incomplete upload' >&2; exit 1; }}"
            )
            done = await self._run_bytes(script, data)
        else:
            limit = "" if cap is None else f" | head -c {cap + 1}"
            script = (
                f"if [ ! -e {path} ] && [ ! -L {path} ]; then echo 'no such file' >&2; exit 4; fi; "
                f"if [ -L {path} ] || [ ! -f {path} ]; then echo 'not a regular file' >&2; exit 3; fi; "
                f"wc -c < {path} && cat {path}{limit}"
            )
            done = await self._run_bytes(script, b"", cap=None if cap is None else cap + 64)
            if done.returncode == 4 and b"no such file" in done.stderr:
                raise RemoteFileMissing(f"{remote} does not exist")
            if done.returncode == 3 and b"not a regular file" in done.stderr:
                raise RefusedFile(f"result file {remote} is not a regular file")
        if done.returncode != 0:
            detail = text(done.stderr).strip()[-300:]
            raise TransportError(
                f"{what} failed: the server has no SFTP subsystem ({missing}; add 'Subsystem sftp "
                f"internal-sftp' to its sshd_config) and the exec channel fallback failed "
                f"(exit {done.returncode}): {detail}"
            )
        if upload:
            return local.stat().st_size
        size, _, body = done.stdout.partition(b"\n")
        if cap is not None and ((size.strip().isdigit() and int(size.strip()) > cap) or len(body) > cap):
            raise RefusedFile(too_large("result file", cap))
        if not size.strip().isdigit() or int(size.strip()) != len(body):
            raise TransportError(f"{what} failed: incomplete read over the exec channel (no SFTP subsystem)")
        local.write_bytes(body)
        return len(body)

    async def _run_bytes(self, script: str, stdin: bytes, cap: int | None = None) -> _Bytes:
        """One command with binary output (a file transfer over exec), its output read up to
        ``cap`` bytes (``RefusedFile`` past it); counts as a command."""
        self.commands += 1
        async with self._link.sessions:
            conn = await self._link.connection()
            try:
                returncode, out, err = await execute_bytes(
                    conn, script, stdin, self._command_timeout, DEFAULT_OUTPUT_BYTES if cap is None else cap
                )
            except asyncssh.ConnectionLost as exc:
                raise TransportError(f"command on {self._where()} lost its connection") from exc
            except OutputTooLarge as exc:
                raise RefusedFile(too_large("result file", (cap or DEFAULT_OUTPUT_BYTES) - 64)) from exc
        return _Bytes(returncode, out, err)

    async def close(self) -> None:
        """Close the connection if this transport owns it (a pool's transports leave it to the pool)."""
        if self._owns_link:
            await self._link.close()


class SshPool:
    """SSH connections, one per distinct ``SshOptions``, closed together: a pass's, or a watch's
    across its passes (``retain`` closes those no longer configured)."""

    def __init__(
        self,
        *,
        connect_timeout: float | None = Policies.connect_timeout,
        command_timeout: float | None = Policies.command_timeout,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        keepalive_interval: float | None = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.max_sessions = max_sessions
        self.keepalive_interval = keepalive_interval
        self._links: dict[SshOptions, Link] = {}

    @classmethod
    def from_policies(cls, policies: Policies) -> SshPool:
        return cls(connect_timeout=policies.connect_timeout, command_timeout=policies.command_timeout)

    @property
    def connections(self) -> int:
        """Distinct connections handed out (open or not)."""
        return len(self._links)

    @property
    def connects(self) -> int:
        """Connection setups so far over the pool's connections (a dropped one reopened counts again)."""
        return sum(link.connects for link in self._links.values())

    async def retain(self, wanted: Collection[SshOptions]) -> None:
        """Close the connections whose options are not in ``wanted`` (a target removed or changed)."""
        gone = [options for options in self._links if options not in wanted]
        links = [self._links.pop(options) for options in gone]
        await asyncio.gather(*(link.close() for link in links))

    def transport(self, options: SshOptions, *, name: str | None = None) -> SshTransport:
        """A transport for ``options``; it connects on its first call, sharing the pool's link."""
        link = self._links.get(options)
        if link is None:
            link = Link(
                options,
                connect_timeout=self.connect_timeout,
                max_sessions=self.max_sessions,
                keepalive_interval=self.keepalive_interval,
            )
            self._links[options] = link
        return SshTransport(link, name=name or options.host, command_timeout=self.command_timeout, owns_link=False)

    async def close(self) -> None:
        """Close every connection of the pass."""
        links, self._links = list(self._links.values()), {}
        await asyncio.gather(*(link.close() for link in links))

    async def __aenter__(self) -> SshPool:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
