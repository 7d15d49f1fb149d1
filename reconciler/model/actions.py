"""Actions a plan is made of, and what applying one gave: the typed contract between the
planner, ``reconciler.apply`` and ``reconciler.plan.fold``.

I/O actions (``ShipCode``, ``CheckEnv``, ``Launch``, ``Collect``, ``Kill``, ``Tidy``) are carried
out by ``reconciler.apply`` through the target's backend; ``Record`` is a pure status change the
planner decided from the observation alone. Why a run is killed is a ``KillReason`` (one class per
reason); each I/O action yields one ``ActionResult`` whose ``outcome`` is what the action learnt
(``Started``, ``Collected``, ``TidyReport``, ``EnvChecked``, or ``NotTried`` / ``Refused`` when it
did not happen). ``reconciler.plan.fold`` turns results into status entries by matching on those
types, so every decision stays in the pure planner and mypy checks the whole pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.model.config import EnvRepair
from reconciler.model.decisions import DecisionAction
from reconciler.model.env import EnvVerdict, RepairRecord
from reconciler.model.leases import LeaseRequest
from reconciler.model.status import StatusEntry

# -- why a run is killed --------------------------------------------------------------------------


@dataclass(frozen=True)
class Fatal:
    """A fatal line in the log (``klass``: its failure class) or a hard timeout: the attempt fails."""

    klass: str

    def __str__(self) -> str:
        return f"fatal:{self.klass}"


@dataclass(frozen=True)
class Restart:
    """The spec changed under a live run whose policy is ``restart``: it runs again as specified."""

    why: str

    def __str__(self) -> str:
        return f"restart:{self.why}"


@dataclass(frozen=True)
class Leftover:
    """Processes an ended attempt left in its process group: stopped before any retry."""

    why: str

    def __str__(self) -> str:
        return f"leftover:{self.why}"


@dataclass(frozen=True)
class ByDecision:
    """A person's decision (``dispatch/decisions.yaml``) stops the run: retry, fail or cancel it."""

    action: DecisionAction
    decision_id: str

    def __str__(self) -> str:
        return f"decision:{self.action.value}:{self.decision_id}"


@dataclass(frozen=True)
class Cancel:
    """The run is not wanted any more (cancelled or removed from the spec, held with kill_on_hold)."""

    why: str

    def __str__(self) -> str:
        return self.why


KillReason = Fatal | Restart | Leftover | ByDecision | Cancel


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
    repair: EnvRepair | None = None
    """The repair ladder to run if the check fails for a missing environment or module, then
    check again (``env.repair``); ``None``: none (not configured, or it ran for this commit)."""
    repaired: RepairRecord | None = None
    """The ladder that already ran for this commit and environment settings: the new verdict
    carries it (so it never runs twice)."""

    kind = "env"

    def describe(self) -> str:
        what = f"running {self.command!r}" if self.command else "code, env, python, GPUs"
        ladder = ", repaired if it fails for a missing env or module" if self.repair else ""
        return f"check the environment on {self.target} ({what}{ladder})"


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
    lease: LeaseRequest | None = None
    """The GPU lease to take before the run dir is claimed (the target names a lease directory)."""
    vram_source: str | None = None
    """Where ``vram_gb`` came from when a measurement was in play (``model.vram``)."""

    kind = "launch"

    def describe(self) -> str:
        gpu = f" gpu {','.join(map(str, self.gpus))}" if self.gpus else ""
        if self.gpu_count and not self.gpus:
            gpu = f" {self.gpu_count} gpu(s)"
        vram = ""
        if self.vram_source and self.vram_source != "spec" and self.vram_gb is not None:
            vram = f" (VRAM {self.vram_gb:g} GB, {self.vram_source})"
        return f"launch {self.exp_id} attempt {self.attempt} on {self.target}{gpu}{vram}"


@dataclass(frozen=True)
class Collect:
    """Pull the result file of a run that exited 0 into the project and validate it."""

    exp_id: str
    target: str
    attempt: int
    remote_path: str
    local_path: str
    sidecar: Mapping[str, object] | None = None

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
    reason: KillReason = Cancel("")
    tree: bool = False
    """The pid leads no process group of ours (a run the seed started): stop it and its
    descendants, only while its start time is ``start_time``."""

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


# -- what an action learnt ------------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    """A launch started (or found started) the run: the wrapper's process on a shell target, the
    job on a batch target (``queued`` until the scheduler starts it)."""

    host: str = ""
    pid: int | None = None
    start_time: str | None = None
    """The process's start time (``/proc/<pid>/stat`` field 22): with the pid, it names the process."""
    job_id: str | None = None
    queued: bool = False
    adopted: bool = False
    """The run had been started by an earlier pass that crashed before recording it."""


@dataclass(frozen=True)
class Collected:
    """The result file was copied back, checked and written into the project."""

    rows: int
    means: tuple[tuple[str, float], ...] = ()
    """Each metric's mean over the file's rows (the entry's ``results``)."""


@dataclass(frozen=True)
class TidyReport:
    """What tidying a done run did: the Hub's answer about the checkpoint, the wandb sync."""

    confirmed: bool | None = None
    """The Hub lists the uploaded checkpoint (``None``: nothing to confirm)."""
    missing: tuple[str, ...] = ()
    deleted: bool | None = None
    synced: tuple[str, ...] = ()
    wandb_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnvChecked:
    verdict: EnvVerdict


@dataclass(frozen=True)
class NotTried:
    """The action was not attempted (the target's code or environment is not ready): it waits."""


@dataclass(frozen=True)
class Refused:
    """The target refused the action for good (a ``PermanentError``); ``reason`` is its code,
    e.g. ``ForeignRunDir``: the run dir holds another token."""

    reason: str


Outcome = Started | Collected | TidyReport | EnvChecked | NotTried | Refused | None


@dataclass(frozen=True)
class ActionResult:
    action: Action
    ok: bool
    message: str = ""
    temporary: bool = False
    """The failure was transient (connection, timeout): try again on a later pass."""
    outcome: Outcome = None
    """What the action learnt (``None``: nothing beyond ``ok`` and ``message``)."""
