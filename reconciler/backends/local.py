"""``LocalTransport``: the ``Transport`` of a ``local`` target (this machine, no SSH).

Used by every stage that reaches a target (observe's probe, apply's ship/launch/collect/kill)
when the target is this machine, and by the backend tests as the reference transport. Commands
run as ``sh -c`` in a new session (so a Ctrl-C to the reconciler never reaches them) with
``$HOME`` as the working directory, like an SSH login. A timeout kills the command's whole
process group; jobs that ``ShellRunner`` launched have their own session and are not touched.
OSError and timeouts are converted here into ``TransportError`` / ``CommandTimeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Mapping
from pathlib import Path

from reconciler.backends.base import Completed
from reconciler.errors import CommandTimeout, TransportError


class LocalTransport:
    """Runs commands on this machine; ``put``/``get`` are file copies."""

    def __init__(
        self,
        name: str = "local",
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        command_timeout: float | None = None,
    ) -> None:
        """``env`` entries are added to (override) this process's environment for every command;
        ``command_timeout`` is the default limit of ``run`` in seconds (``None``: no limit)."""
        self.name = name
        self.commands = 0
        self.bytes_transferred = 0
        self._env = {**os.environ, **env} if env else None
        self._cwd = Path(cwd) if cwd is not None else Path.home()
        self._timeout = command_timeout
        self._closed = False

    def _path(self, remote: str) -> Path:
        path = Path(remote).expanduser()
        return path if path.is_absolute() else self._cwd / path

    async def run(self, script: str, *, stdin: bytes | None = None, timeout: float | None = None) -> Completed:
        if self._closed:
            raise TransportError(f"{self.name}: transport is closed")
        limit = self._timeout if timeout is None else timeout
        self.commands += 1
        try:
            proc = await asyncio.create_subprocess_exec(
                "sh",
                "-c",
                script,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=self._cwd,
                env=self._env,
                start_new_session=True,
            )
        except OSError as exc:
            raise TransportError(f"{self.name}: cannot start sh: {exc}") from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), limit)
        except asyncio.TimeoutError as exc:
            await _kill_group(proc)
            raise CommandTimeout(f"{self.name}: command timed out after {limit} s") from exc
        except asyncio.CancelledError:
            await _kill_group(proc)
            raise
        except OSError as exc:
            await _kill_group(proc)
            raise TransportError(f"{self.name}: {exc}") from exc
        self.bytes_transferred += len(stdin or b"") + len(out) + len(err)
        assert proc.returncode is not None
        return Completed(
            returncode=proc.returncode,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
        )

    async def put(self, local: Path, remote: str) -> None:
        await self._copy(Path(local), self._path(remote))

    async def get(self, remote: str, local: Path) -> None:
        await self._copy(self._path(remote), Path(local))

    async def _copy(self, src: Path, dst: Path) -> None:
        if self._closed:
            raise TransportError(f"{self.name}: transport is closed")
        try:
            await asyncio.to_thread(shutil.copyfile, src, dst)
            self.bytes_transferred += dst.stat().st_size
        except OSError as exc:
            raise TransportError(f"{self.name}: copy {src} -> {dst}: {exc}") from exc

    async def close(self) -> None:
        self._closed = True


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """Kill the command's process group (it is its session leader) and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()
