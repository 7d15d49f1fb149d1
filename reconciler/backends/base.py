"""The two small interfaces every target is built from.

``Transport``: run a shell command, put and get files (local subprocess or one SSH connection
per host, reused for the whole pass). ``Runner``: what a pass needs from a target (one probe,
ship code, launch, collect, kill), built on a transport by a scheduler adapter.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from reconciler.model.actions import CheckEnv, Collect, Kill, Launch, Started
from reconciler.model.env import EnvVerdict
from reconciler.model.observed import TargetObservation
from reconciler.model.seedrun import SeedRun

if TYPE_CHECKING:
    from reconciler.backends.logread import LogChunk


@dataclass(frozen=True)
class Completed:
    """A finished remote command."""

    returncode: int
    stdout: str
    stderr: str


class Transport(Protocol):
    """Runs commands on one target. Foreign errors surface as ``TransportError`` subclasses."""

    name: str
    commands: int
    """Remote commands issued since the transport was opened (for benchmarks and tests)."""
    bytes_transferred: int

    async def run(
        self, script: str, *, stdin: bytes | None = None, timeout: float | None = None, max_output: int | None = None
    ) -> Completed:
        """Run ``script`` with ``sh -c`` on the target. Its stdout and its stderr are each read up
        to ``max_output`` bytes (``capped.DEFAULT_OUTPUT_BYTES`` when None); past it the command
        is killed and ``OutputTooLarge`` raised."""
        ...

    async def put(self, local: Path, remote: str) -> None: ...

    async def get(self, remote: str, local: Path, *, max_bytes: int | None = None) -> None:
        """Copy a regular file of at most ``max_bytes`` (checked on the target without following
        a symlink, and again while receiving); ``RefusedFile`` otherwise."""
        ...

    async def close(self) -> None: ...


class Runner(Protocol):
    """A target as the pass sees it."""

    name: str
    transport: Transport

    async def probe(
        self,
        want: Collection[tuple[str, int]] = (),
        jobs: Mapping[tuple[str, int], str] | None = None,
        seed: Mapping[tuple[str, int], SeedRun] | None = None,
    ) -> TargetObservation:
        """One remote command: every run dir of this project (details for ``want`` and for runs
        without an exit code), GPUs, host facts; on batch targets also the scheduler's state of
        the recorded ``jobs`` (job id by run); and the runs the seed started (``seed``: where to
        look, ``model.seedrun``), reported like run dirs of ours with the token ``seed``."""
        ...

    async def ship_code(self, commit: str, archive: Path) -> None:
        """Unpack ``archive`` (a tar of the commit's tree) into ``<root>/code/<commit>/`` unless present."""
        ...

    async def env_check(self, action: CheckEnv, timeout: float) -> EnvVerdict:
        """Check the target's environment for ``action.commit`` (see ``CheckEnv``); never raises
        for a failing check (that is an ``ENV_FAILED`` verdict with evidence), only for transport errors."""
        ...

    async def launch(self, action: Launch) -> Started:
        """Create the run dir with its token, start the wrapper once; returns what it started (``Started``)."""
        ...

    async def collect(self, action: Collect, dest: Path) -> None:
        """Copy the run's result file to ``dest`` (validation is the caller's)."""
        ...

    async def remove_tree(self, path: str) -> bool:
        """Delete ``path`` (a checkpoint dir under the target's root; refuses anything else);
        True when it is gone."""
        ...

    async def run_in_code(self, code_dir: str, script: str, timeout: float | None = None) -> Completed:
        """Run ``script`` in ``code_dir`` with the target's environment activated (wandb sync)."""
        ...

    async def read_log(self, run_dir: str, offset: int, limit: int = ...) -> LogChunk:
        """The run's ``stdout.log`` from ``offset`` (negative: from the end), never through a
        symlink, and its exit code once it ended (``backends.logread``)."""
        ...

    async def kill(self, action: Kill) -> bool:
        """Kill the process group (or cancel the job); True when it is verified gone."""
        ...
