"""Wiring: a ``Runner`` for every configured target, opened once per pass.

``local`` targets run through a subprocess transport, ``ssh`` targets through one pooled SSH
connection per host. Batch clusters (``slurm``, ``pbs``, ``command``) get a ``BatchRunner`` with
their scheduler adapter, over SSH to the login host when ``host`` is set, else locally (the
reconciler runs on the login host).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

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


@dataclass
class Runners:
    by_name: dict[str, Runner] = field(default_factory=dict)
    pool: SshPool | None = None

    async def close(self) -> None:
        for runner in self.by_name.values():
            await runner.transport.close()
        if self.pool is not None:
            await self.pool.close()

    @property
    def commands(self) -> int:
        return sum(r.transport.commands for r in self.by_name.values())


def open_runners(config: Config, project_dir: Path, *, read_only: bool = False) -> Runners:
    """One runner per target; ``read_only`` runners write nothing on their targets (``plan``)."""
    runners = Runners()
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
