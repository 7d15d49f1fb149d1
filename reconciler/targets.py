"""Wiring: a ``Runner`` for every configured target, opened once per pass.

``local`` targets run through a subprocess transport, ``ssh`` targets through one pooled SSH
connection per host. Batch-cluster kinds (``slurm``, ``pbs``, ``command``) are accepted by the
schema; until their scheduler adapters land, their runner answers every probe with "unreachable:
kind not supported yet", so nothing is launched there and nothing there is declared failed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.backends.base import Runner, Transport
from reconciler.backends.local import LocalTransport
from reconciler.backends.shell import ShellRunner
from reconciler.backends.ssh import SshPool
from reconciler.errors import InvalidTarget
from reconciler.model.actions import CheckEnv, Collect, Kill, Launch
from reconciler.model.config import Config, Target, TargetKind
from reconciler.model.env import EnvVerdict
from reconciler.model.observed import TargetObservation


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


def open_runners(config: Config, project_dir: Path) -> Runners:
    runners = Runners()
    for target in config.targets:
        if target.kind is TargetKind.LOCAL:
            transport = LocalTransport(name=target.name)
            runners.by_name[target.name] = ShellRunner(
                target, transport, project_dir, config.project, command_timeout=config.policies.command_timeout
            )
        elif target.kind is TargetKind.SSH and target.ssh is not None:
            if runners.pool is None:
                runners.pool = SshPool.from_policies(config.policies)
            ssh = runners.pool.transport(target.ssh, name=target.name)
            runners.by_name[target.name] = ShellRunner(
                target, ssh, project_dir, config.project, command_timeout=config.policies.command_timeout
            )
        else:
            runners.by_name[target.name] = Unsupported(target)
    return runners


class Unsupported:
    """A target whose kind this version cannot drive yet: always unreachable, never acted on."""

    def __init__(self, target: Target) -> None:
        self.name = target.name
        self.target = target
        self.transport: Transport = LocalTransport(name=target.name)

    async def probe(
        self, want: Collection[tuple[str, int]] = (), jobs: Mapping[tuple[str, int], str] | None = None
    ) -> TargetObservation:
        return TargetObservation(self.name, reachable=False, error=self._why)

    @property
    def _why(self) -> str:
        return f"target kind {self.target.kind.value!r} is not supported by this version"

    async def ship_code(self, commit: str, archive: Path) -> None:
        raise InvalidTarget(self._why, reason="UnsupportedKind")

    async def env_check(self, action: CheckEnv, timeout: float) -> EnvVerdict:
        raise InvalidTarget(self._why, reason="UnsupportedKind")

    async def launch(self, action: Launch) -> dict[str, object]:
        raise InvalidTarget(self._why, reason="UnsupportedKind")

    async def collect(self, action: Collect, dest: Path) -> None:
        raise InvalidTarget(self._why, reason="UnsupportedKind")

    async def kill(self, action: Kill) -> bool:
        raise InvalidTarget(self._why, reason="UnsupportedKind")
