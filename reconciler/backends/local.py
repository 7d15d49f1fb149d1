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
from reconciler.backends.capped import DEFAULT_OUTPUT_BYTES, copy_regular, read_capped
from reconciler.errors import CommandTimeout, OutputTooLarge, RemoteFileMissing, TransportError


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

    async def run(
        self, script: str, *, stdin: bytes | None = None, timeout: float | None = None, max_output: int | None = None
    ) -> Completed:
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
        cap = DEFAULT_OUTPUT_BYTES if max_output is None else max_output
        try:
            out, err = await asyncio.wait_for(_communicate(proc, stdin, cap), limit)
        except asyncio.TimeoutError as exc:
            await _kill_group(proc)
            raise CommandTimeout(f"{self.name}: command timed out after {limit} s") from exc
        except OutputTooLarge as exc:
            await _kill_group(proc)
            raise OutputTooLarge(f"{self.name}: {exc}; the read was aborted") from exc
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

    async def get(self, remote: str, local: Path, *, max_bytes: int | None = None) -> None:
        if self._closed:
            raise TransportError(f"{self.name}: transport is closed")
        try:
            size = await asyncio.to_thread(copy_regular, self._path(remote), Path(local), max_bytes)
        except RemoteFileMissing as exc:
            raise RemoteFileMissing(f"{self.name}: {exc}") from exc
        except OSError as exc:
            raise TransportError(f"{self.name}: copy {remote} -> {local}: {exc}") from exc
        self.bytes_transferred += size

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


async def _communicate(proc: asyncio.subprocess.Process, stdin: bytes | None, cap: int) -> tuple[bytes, bytes]:
    """``proc.communicate`` with stdout and stderr each read up to ``cap`` bytes."""
    assert proc.stdout is not None and proc.stderr is not None

    async def feed() -> None:
        if proc.stdin is None:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            if stdin:
                proc.stdin.write(stdin)
                await proc.stdin.drain()
            proc.stdin.close()

    out_task = asyncio.ensure_future(read_capped(proc.stdout.read, cap, "command output"))
    err_task = asyncio.ensure_future(read_capped(proc.stderr.read, cap, "command error output"))
    feed_task = asyncio.ensure_future(feed())
    try:
        out, err, _ = await asyncio.gather(out_task, err_task, feed_task)
    finally:
        for task in (out_task, err_task, feed_task):
            task.cancel()
        await asyncio.gather(out_task, err_task, feed_task, return_exceptions=True)
    await proc.wait()
    return out, err


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """Kill the command's process group (it is its session leader) and reap it.

    What it had written is read and dropped first: a reader stopped at a cap leaves its pipe
    paused, and asyncio reports the exit only once the pipes are closed. ``proc.kill`` only when
    the group is gone: it polls the pid first, reaping it behind the child watcher's back."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()

    async def discard(stream: asyncio.StreamReader | None) -> None:
        while stream is not None and await stream.read(65536):
            pass

    with contextlib.suppress(asyncio.TimeoutError, OSError):
        await asyncio.wait_for(asyncio.gather(discard(proc.stdout), discard(proc.stderr)), 5)
    await proc.wait()
