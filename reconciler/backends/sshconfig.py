"""From ``SshOptions`` to an open asyncssh connection, and asyncssh's connect failures to ours.

``~/.ssh/config`` (or ``SshOptions.config_file``) is read by asyncssh itself: Host aliases,
HostName, User, Port, IdentityFile, UserKnownHostsFile, ProxyJump, ConnectTimeout, ...; every
field set in ``SshOptions`` overrides the file. Host keys are verified against ``known_hosts``
(the option, else the config's UserKnownHostsFile, else ``~/.ssh/known_hosts``; a missing file
trusts nothing) unless ``strict_host_key_checking`` is false. Without ``identity_file`` asyncssh
offers the agent's keys (``SSH_AUTH_SOCK``) and the default ``~/.ssh/id_*`` keys.

An explicit ``proxy_jump`` (``[user@]host[:port][,...]``) is opened here, hop by hop, with the
target's identity file, known_hosts and config; a ProxyJump that comes from the config file is
opened by asyncssh with that file's settings for the jump host, as OpenSSH does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path

from reconciler.backends.asyncssh_quiet import asyncssh
from reconciler.errors import ConnectError
from reconciler.model.config import SshOptions

_DEFAULT_PORT = 22


@dataclass(frozen=True)
class Endpoint:
    """Where an alias really points, after the config file (for messages)."""

    user: str | None
    host: str
    port: int
    alias: str

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        where = f"{user}{self.host}:{self.port}"
        return where if self.alias == self.host else f"{self.alias} ({where})"


def _path(value: str) -> str:
    return str(Path(value).expanduser())


def _config(options: SshOptions) -> list[str] | tuple[()]:
    """The config files to read: the option's, else asyncssh's default ``~/.ssh/config``."""
    return [_path(options.config_file)] if options.config_file else ()


def _resolved(options: SshOptions) -> asyncssh.SSHClientConnectionOptions | None:
    try:
        return asyncssh.SSHClientConnectionOptions(
            config=_config(options),
            host=options.host,
            port=options.port if options.port is not None else (),
            username=options.user if options.user else (),
            client_keys=None,
            agent_path=None,
        )
    except (asyncssh.Error, OSError, ValueError):
        return None


def endpoint(options: SshOptions) -> Endpoint:
    """The user, address and port ``options`` reach (best effort: falls back to the options)."""
    resolved = _resolved(options)
    if resolved is None:
        return Endpoint(options.user, options.host, options.port or _DEFAULT_PORT, options.host)
    return Endpoint(resolved.username or None, resolved.host, resolved.port, options.host)


def parse_jump(spec: str) -> list[tuple[str | None, str, int | None]]:
    """``[ssh://][user@]host[:port]`` hops, comma separated, in connection order."""
    hops: list[tuple[str | None, str, int | None]] = []
    for raw in spec.split(","):
        hop = raw.strip().removeprefix("ssh://")
        user, _, hostport = hop.rpartition("@")
        host, port = hostport, None
        if hostport.startswith("[") and "]" in hostport:
            host, _, rest = hostport[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") else None
        elif hostport.count(":") == 1:
            host, port_text = hostport.split(":")
            port = int(port_text)
        hops.append((user or None, host, port))
    return hops


async def _connect_one(
    options: SshOptions,
    tunnel: asyncssh.SSHClientConnection | None,
    connect_timeout: float | None,
    keepalive_interval: float | None,
) -> asyncssh.SSHClientConnection:
    known_hosts: object = ()
    if not options.strict_host_key_checking:
        known_hosts = None
    elif options.known_hosts:
        known_hosts = _path(options.known_hosts)
    try:
        return await asyncssh.connect(
            options.host,
            options.port if options.port is not None else (),
            tunnel=tunnel if tunnel is not None else (),
            config=_config(options),
            username=options.user if options.user else (),
            client_keys=[_path(options.identity_file)] if options.identity_file else (),
            known_hosts=known_hosts,
            connect_timeout=connect_timeout,
            keepalive_interval=keepalive_interval if keepalive_interval is not None else (),
        )
    except (asyncssh.Error, OSError, asyncio.TimeoutError, ValueError) as exc:
        raise connect_error(options, exc, connect_timeout) from exc


async def open_connection(
    options: SshOptions, *, connect_timeout: float | None, keepalive_interval: float | None = None
) -> tuple[asyncssh.SSHClientConnection, list[asyncssh.SSHClientConnection]]:
    """Connect (through the explicit jump hosts, if any); returns the connection and its hops."""
    hops: list[asyncssh.SSHClientConnection] = []
    tunnel: asyncssh.SSHClientConnection | None = None
    try:
        for user, host, port in parse_jump(options.proxy_jump) if options.proxy_jump else []:
            hop = replace(options, host=host, port=port, user=user, proxy_jump=None)
            tunnel = await _connect_one(hop, tunnel, connect_timeout, keepalive_interval)
            hops.append(tunnel)
        conn = await _connect_one(options, tunnel, connect_timeout, keepalive_interval)
    except BaseException:
        for hop_conn in reversed(hops):
            hop_conn.abort()
        raise
    return conn, hops


def _has_known_key(options: SshOptions, where: Endpoint) -> bool:
    """True when known_hosts trusts *some* key for the host (a mismatch, not an unknown host)."""
    if options.known_hosts:
        files: list[str] = [_path(options.known_hosts)]
    else:
        resolved = _resolved(options)
        configured = resolved.known_hosts if resolved is not None else None
        listed = configured if isinstance(configured, list) else []
        files = [_path(str(item)) for item in listed if isinstance(item, (str, Path))]
        files = files or [_path("~/.ssh/known_hosts")]  # asyncssh's default as well
    port = where.port if where.port != _DEFAULT_PORT else None
    for file in files:
        try:
            trusted_keys, trusted_cas = asyncssh.match_known_hosts(file, where.host, where.host, port)[:2]
        except (asyncssh.Error, OSError, ValueError):
            continue
        if trusted_keys or trusted_cas:
            return True
    return False


def connect_error(options: SshOptions, exc: BaseException, connect_timeout: float | None) -> ConnectError:
    """A ``ConnectError`` naming the host, port and what failed (the cause chained by the caller)."""
    where = endpoint(options)
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        if _has_known_key(options, where):
            message = (
                f"host key mismatch for {where}: known_hosts holds a different key "
                "(host reinstalled, or someone in the middle)"
            )
        else:
            message = (
                f"unknown host key for {where}: not in known_hosts and strict host key "
                "checking is on (add it with ssh-keyscan, or set strict_host_key_checking: false)"
            )
    elif isinstance(exc, asyncssh.PermissionDenied):
        message = f"authentication failed for {where}: {exc.reason}"
    elif isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        message = f"cannot connect to {where}: no answer within {connect_timeout}s"
    elif isinstance(exc, OSError) and exc.filename:
        message = f"cannot connect to {where}: {exc.filename}: {exc.strerror or exc}"
    elif isinstance(exc, OSError):
        message = f"cannot connect to {where}: {exc.strerror or exc}"
    elif isinstance(exc, asyncssh.DisconnectError):
        message = f"ssh handshake with {where} failed: {exc.reason}"
    else:
        message = f"cannot connect to {where}: {exc}"
    return ConnectError(message)
