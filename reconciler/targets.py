"""Wiring: a ``Runner`` for every configured target, opened once per pass.

``local`` targets run through a subprocess transport, ``ssh`` targets through one pooled SSH
connection per host. Batch clusters (``slurm``, ``pbs``, ``command``) get a ``BatchRunner`` with
their scheduler adapter, over SSH to the login host when ``host`` is set, else locally (the
reconciler runs on the login host). A ``--once`` pass opens its own SSH pool and closes it at the
end; watch mode keeps one pool, and the event loop its connections belong to, across its passes
(``KeptConnections``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Collection, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from reconciler.backends.base import Completed, Runner, Transport
from reconciler.backends.batch import BatchRunner
from reconciler.backends.cmdtemplate import CommandTemplate
from reconciler.backends.local import LocalTransport
from reconciler.backends.logread import LogChunk
from reconciler.backends.pbs import Pbs
from reconciler.backends.scheduler import Scheduler
from reconciler.backends.shell import ShellRunner
from reconciler.backends.slurm import Slurm
from reconciler.errors import InvalidTarget
from reconciler.model.actions import CheckEnv, Collect, Kill, Launch, Started
from reconciler.model.config import Config, Target, TargetKind
from reconciler.model.env import EnvVerdict
from reconciler.model.observed import TargetObservation
from reconciler.model.seedrun import SeedRun

if TYPE_CHECKING:
    from reconciler.backends.ssh import SshPool

T = TypeVar("T")


@dataclass
class Runners:
    by_name: dict[str, Runner] = field(default_factory=dict)
    pool: SshPool | None = None
    owns_pool: bool = True
    """False when the pool was handed in (kept across passes): ``close`` leaves it open."""

    async def close(self) -> None:
        for runner in self.by_name.values():
            await runner.transport.close()
        if self.pool is not None and self.owns_pool:
            await self.pool.close()

    @property
    def commands(self) -> int:
        return sum(r.transport.commands for r in self.by_name.values())


def open_runners(config: Config, project_dir: Path, *, read_only: bool = False, pool: SshPool | None = None) -> Runners:
    """One runner per target; ``read_only`` runners write nothing on their targets (``plan``).
    SSH targets use ``pool`` when given (kept open by the caller), else a pool of their own."""
    runners = Runners(pool=pool, owns_pool=pool is None)
    timeout = config.policies.command_timeout
    for target in config.targets:
        transport: Transport
        if target.ssh is not None:
            if runners.pool is None:
                from reconciler.backends.ssh import SshPool  # asyncssh takes ~0.25 s to import

                runners.pool = SshPool.from_policies(config.policies)
            transport = runners.pool.transport(target.ssh, name=target.name)
        elif target.kind is TargetKind.SSH:
            runners.by_name[target.name] = Unsupported(target)
            continue
        else:
            transport = LocalTransport(name=target.name)
        scheduler = scheduler_for(target)
        if scheduler is None:
            runners.by_name[target.name] = ShellRunner(
                target, transport, project_dir, config.project, command_timeout=timeout
            )
        else:
            runners.by_name[target.name] = BatchRunner(
                target, transport, project_dir, config.project, scheduler, command_timeout=timeout
            )
        runner = runners.by_name[target.name]
        if isinstance(runner, ShellRunner):
            runner.read_only = read_only
            runner.limits = config.policies.limits
    return runners


class KeptConnections:
    """What watch mode keeps from one pass to the next (``reconcile_once(..., kept=...)``): an
    event loop running in a thread of its own, and one ``SshPool`` on it, so each SSH connection
    is set up once and serves every pass instead of costing a connection setup per host per pass.

    An asyncssh connection belongs to the event loop that opened it, hence one loop for the
    watch's lifetime. The loop keeps running between passes, so asyncssh answers the server's
    keepalives and sees a connection drop while the watch sleeps: the next pass reconnects
    instead of failing on a dead connection. A connection lost during a command is dropped by the
    pool and the next command reconnects; the pool's keepalive (``KEEPALIVE`` seconds) finds a
    peer gone silent. ``close`` closes the connections and stops the loop; ``run`` after it (or
    after the loop died) starts afresh.
    """

    KEEPALIVE = 30.0

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool: SshPool | None = None
        self._timeouts: tuple[float | None, float | None] | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the kept loop and wait for its result (or exception)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            self._pool = None  # its connections belonged to a loop that is gone
            loop = self._loop = asyncio.new_event_loop()
            thread = self._thread = threading.Thread(target=loop.run_forever, name="reconciler-ssh", daemon=True)
            thread.start()
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    async def pool(self, config: Config) -> SshPool:
        """The kept pool, inside ``run``: a new one when the timeouts changed; connections to
        hosts no longer configured are closed."""
        from reconciler.backends.ssh import SshPool

        policies = config.policies
        timeouts = (policies.connect_timeout, policies.command_timeout)
        if self._pool is not None and timeouts != self._timeouts:
            await self._pool.close()
            self._pool = None
        if self._pool is None:
            self._pool = SshPool(
                connect_timeout=policies.connect_timeout,
                command_timeout=policies.command_timeout,
                keepalive_interval=self.KEEPALIVE,
            )
            self._timeouts = timeouts
        await self._pool.retain({t.ssh for t in config.targets if t.ssh is not None})
        return self._pool

    @property
    def connects(self) -> int:
        """Connection setups so far (one per host unless a connection dropped and was reopened)."""
        return self._pool.connects if self._pool is not None else 0

    def close(self) -> None:
        """Close the kept connections and stop the loop (a later ``run`` starts a new one)."""
        loop, thread, pool = self._loop, self._thread, self._pool
        self._loop = self._thread = self._pool = None
        if loop is None or thread is None:
            return
        if thread.is_alive():

            async def shutdown() -> None:
                if pool is not None:
                    await pool.close()
                await loop.shutdown_asyncgens()
                await loop.shutdown_default_executor()

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=15)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
        if not loop.is_running():
            loop.close()


def scheduler_for(target: Target) -> Scheduler | None:
    """The scheduler adapter of a batch target (``None`` for targets whose runs are processes)."""
    if target.kind is TargetKind.SLURM:
        return Slurm()
    if target.kind is TargetKind.PBS:
        return Pbs()
    if target.kind is TargetKind.COMMAND:
        if target.templates is None:
            raise InvalidTarget(f"target {target.name}: kind command needs templates", "InvalidTarget")
        return CommandTemplate(target.templates)
    return None


class Unsupported:
    """A target whose kind this version cannot drive yet: always unreachable, never acted on."""

    def __init__(self, target: Target) -> None:
        self.name = target.name
        self.target = target
        self.transport: Transport = LocalTransport(name=target.name)

    async def probe(
        self,
        want: Collection[tuple[str, int]] = (),
        jobs: Mapping[tuple[str, int], str] | None = None,
        seed: Mapping[tuple[str, int], SeedRun] | None = None,
    ) -> TargetObservation:
        return TargetObservation(self.name, reachable=False, error=self._why)

    @property
    def _why(self) -> str:
        return f"target kind {self.target.kind.value!r} is not supported by this version"

    async def ship_code(self, commit: str, archive: Path) -> None:
        raise InvalidTarget(self._why, reason="UnsupportedKind")

    async def env_check(self, action: CheckEnv, timeout: float) -> EnvVerdict:
        raise InvalidTarget(self._why, reason="UnsupportedKind")

    async def launch(self, action: Launch) -> Started:
        raise InvalidTarget(self._why, reason="UnsupportedKind")

    async def collect(self, action: Collect, dest: Path) -> None:
        raise InvalidTarget(self._why, reason="UnsupportedKind")

    async def remove_tree(self, path: str) -> bool:
        raise InvalidTarget(self._why, reason="UnsupportedKind")

    async def run_in_code(self, code_dir: str, script: str, timeout: float | None = None) -> Completed:
        raise InvalidTarget(self._why, reason="UnsupportedKind")

    async def read_log(self, run_dir: str, offset: int, limit: int = 0) -> LogChunk:
        raise InvalidTarget(self._why, reason="UnsupportedKind")

    async def kill(self, action: Kill) -> bool:
        raise InvalidTarget(self._why, reason="UnsupportedKind")
