"""Actions a plan is made of, and what applying one gave.

I/O actions (``ShipCode``, ``Launch``, ``Collect``, ``Kill``) are carried out by ``reconciler.apply``
through the target's backend; ``Record`` is a pure status change the planner decided from the
observation alone. Each I/O action yields one ``ActionResult``; ``reconciler.plan.fold`` turns
results into status entries, so every decision stays in the pure planner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.model.status import StatusEntry


@dataclass(frozen=True)
class ShipCode:
    """Make ``<root>/code/<commit>/`` hold the tree of ``commit`` on ``target`` (no-op when present)."""

    target: str
    commit: str
    exp_id: str = ""

    kind = "ship"

    def describe(self) -> str:
        return f"ship code {self.commit[:10]} to {self.target}"


@dataclass(frozen=True)
class CheckEnv:
    """Check that ``target`` can run the project's code at ``commit``: the code is there, the
    environment activates, Python runs, GPUs are visible, and ``command`` (the config's
    ``env_check.command``; empty: none) succeeds within the time limit. Runs before any launch
    there. It is the target's check: no experiment's command is run."""

    target: str
    commit: str
    code_dir: str
    command: str
    env_hash: str
    exp_id: str = ""

    kind = "env"

    def describe(self) -> str:
        what = f"running {self.command!r}" if self.command else "code, env, python, GPUs"
        return f"check the environment on {self.target} ({what})"


@dataclass(frozen=True)
class Launch:
    """Create the attempt's run dir with its token, then start the wrapper (at most once)."""

    exp_id: str
    target: str
    attempt: int
    command: str
    """The command with placeholders filled (and remediation applied)."""
    run_dir: str
    token: str
    code_dir: str
    commit: str
    result_file: str
    """Project-relative path of the result file (same relative path inside the code dir)."""
    checkpoint_dir: str
    gpus: tuple[int, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    expected_duration_hours: float | None = None
    duration_basis: str | None = None
    vram_gb: float | None = None
    gpu_count: int = 0
    """GPUs to request from a batch scheduler (which picks the devices; ``gpus`` is then empty)."""

    kind = "launch"

    def describe(self) -> str:
        gpu = f" gpu {','.join(map(str, self.gpus))}" if self.gpus else ""
        if self.gpu_count and not self.gpus:
            gpu = f" {self.gpu_count} gpu(s)"
        return f"launch {self.exp_id} attempt {self.attempt} on {self.target}{gpu}"


@dataclass(frozen=True)
class Collect:
    """Pull the result file of a run that exited 0 into the project and validate it."""

    exp_id: str
    target: str
    attempt: int
    remote_path: str
    local_path: str
    sidecar: Mapping[str, Any] | None = None

    kind = "collect"

    def describe(self) -> str:
        return f"collect {self.exp_id} attempt {self.attempt} from {self.target}"


@dataclass(frozen=True)
class Kill:
    """Stop a run's process group (or cancel its job), then check it is gone."""

    exp_id: str
    target: str
    attempt: int
    run_dir: str
    pid: int | None
    start_time: str | None
    job_id: str | None = None
    reason: str = ""

    kind = "kill"

    def describe(self) -> str:
        return f"kill {self.exp_id} attempt {self.attempt} on {self.target} ({self.reason})"


@dataclass(frozen=True)
class Tidy:
    """After a run is done: delete the target's copy of its checkpoint once the Hub lists the
    uploaded files (never before), and sync its offline wandb runs from the target."""

    exp_id: str
    target: str
    attempt: int
    run_dir: str
    code_dir: str
    checkpoint_dir: str | None = None
    """Deleted only after ``artifact`` is confirmed on the Hub."""
    artifact: tuple[str, str, str, tuple[str, ...]] | None = None
    """(repo_id, repo_type, path_in_repo, files) the job reported uploaded."""
    wandb_dirs: tuple[str, ...] = ()
    """Offline wandb run dirs to ``wandb sync`` on the target."""

    kind = "tidy"

    def describe(self) -> str:
        what = [w for w, on in (("checkpoint cleanup", self.artifact), ("wandb sync", self.wandb_dirs)) if on]
        return f"tidy {self.exp_id} attempt {self.attempt} on {self.target} ({', '.join(what)})"


@dataclass(frozen=True)
class Record:
    """A status change decided from the observation alone (adopt, unreachable, retry, hold, ...)."""

    exp_id: str
    entry: StatusEntry
    event: str
    target: str = ""

    kind = "record"

    def describe(self) -> str:
        return f"{self.exp_id}: {self.event}"


Action = ShipCode | CheckEnv | Launch | Collect | Kill | Tidy | Record

KIND_ORDER = {"record": 0, "kill": 1, "ship": 2, "env": 3, "launch": 4, "collect": 5, "tidy": 6}


def sort_key(action: Action) -> tuple[str, int, str, int]:
    """Plans sort by target, then kind (records, kills, ships, env checks, launches, collects), then id."""
    attempt = getattr(action, "attempt", 0)
    return (action.target, KIND_ORDER[action.kind], action.exp_id, attempt)


@dataclass(frozen=True)
class ActionResult:
    action: Action
    ok: bool
    message: str = ""
    temporary: bool = False
    """The failure was transient (connection, timeout): try again on a later pass."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """What the action learnt: ``pid``, ``start_time``, ``host``, ``job_id``, ``rows``, ``gone``."""
