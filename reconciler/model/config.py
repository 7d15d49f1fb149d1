"""Targets and policies: the typed form of ``config/reconciler.yaml``.

Built by ``reconciler.load.config`` from an already schema-validated document; every default
here is the documented default of the schema.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from enum import Enum

from reconciler.model.spec import RemediationRule


class TargetKind(str, Enum):
    LOCAL = "local"
    SSH = "ssh"
    SLURM = "slurm"
    PBS = "pbs"
    COMMAND = "command"

    @property
    def batch(self) -> bool:
        """Runs are batch jobs handed to a scheduler (not processes started by us)."""
        return self in (TargetKind.SLURM, TargetKind.PBS, TargetKind.COMMAND)


@dataclass(frozen=True)
class SshOptions:
    """How to reach a host. Unset fields fall back to ``~/.ssh/config`` for the alias ``host``."""

    host: str
    port: int | None = None
    user: str | None = None
    identity_file: str | None = None
    known_hosts: str | None = None
    """Path of a known_hosts file; ``None`` means the user's default. Host keys are always verified
    unless ``strict_host_key_checking`` is false."""
    strict_host_key_checking: bool = True
    proxy_jump: str | None = None
    config_file: str | None = None
    """An ssh_config file to read instead of ``~/.ssh/config``."""


@dataclass(frozen=True)
class EnvRepair:
    """The environment repair ladder (``env.repair``, opt-in per target): shell commands run in
    order in the commit's code dir, without the environment activated (it may not exist yet), each
    under ``timeout_seconds``, when the environment check fails for a missing environment or
    module; at most once per commit and environment settings. ``repair: true`` takes the seed's
    ladder for the target's env (``backends.envrepair.default_ladder``)."""

    commands: tuple[str, ...] = ()
    """Empty: the default ladder."""
    timeout_seconds: float = 900.0


@dataclass(frozen=True)
class EnvActivation:
    """How a run's shell gets its Python environment (applied before the command)."""

    conda: str | None = None
    venv: str | None = None
    """Path of a virtualenv, relative to the code dir or absolute on the target."""
    setup: tuple[str, ...] = ()
    """Extra shell lines run first (``module load cuda/12.1``, ``export X=1``)."""
    variables: tuple[tuple[str, str], ...] = ()
    repair: EnvRepair | None = None
    """``None``: a failing environment check is never repaired, only reported."""


@dataclass(frozen=True)
class GpuPolicy:
    blacklist: tuple[int, ...] = ()
    """GPU indices never used on this target."""
    blacklist_models: tuple[str, ...] = ("RTX A6000",)
    """Model-name substrings never used (the seed always excluded the RTX A6000)."""
    max_runs_per_gpu: int = 1
    vram_factor: float = 1.2
    leases: str | None = None
    """A directory on the target shared by every project placing there (``/tmp/reconciler-leases``):
    each launch takes a lease on its GPUs under a lock and every probe reads them, so two
    controllers never over-subscribe a GPU (``model.leases``). ``None``: no leases."""


@dataclass(frozen=True)
class BatchOptions:
    """Scheduler settings for ``slurm`` and ``pbs`` targets."""

    queue: str | None = None
    """SLURM partition or PBS queue."""
    account: str | None = None
    """SLURM account or PBS ``-P`` project."""
    qos: str | None = None
    storage: str | None = None
    cpus_per_gpu: int | None = None
    mem_gb: float | None = None
    modules: tuple[str, ...] = ()
    walltime_factor: float = 1.5
    default_walltime_hours: float = 12.0
    extra_directives: tuple[str, ...] = ()


@dataclass(frozen=True)
class CommandTemplates:
    """For ``command`` targets (a platform with its own CLI, e.g. the seed's C500 ``sco acp jobs``):
    shell templates for submit, status, cancel and find, and how to read their output
    (``reconciler.backends.cmdtemplate``)."""

    submit: str = ""
    status: str = ""
    cancel: str = ""
    find: str = ""
    """Prints the ids of live jobs named ``{name}``; empty: no adoption after a crashed submit."""
    job_id_regex: str = r"\S+"
    """Applied to the submit and find output: group 1, or the whole match, is a job id."""
    state_regex: str = r"^\s*(\S+)"
    """Applied (multiline) to one job's status output: group 1, or the match, is the state word."""
    states: tuple[tuple[str, str], ...] = ()
    """The platform's state word -> a ``JobState`` value (``running``, ``completed``, ...)."""


@dataclass(frozen=True)
class EnvCheck:
    """The target-level environment check's own command (``env_check.command``, per target or
    in ``policies``; the target's wins). ``None``: the neutral check only (code present, the
    environment activates, Python runs, GPUs visible): no experiment's command ever decides
    whether a target is usable."""

    command: str | None = None


@dataclass(frozen=True)
class Target:
    name: str
    kind: TargetKind
    root: str
    """Where this project's runs and code live on the target (``~`` allowed)."""
    ssh: SshOptions | None = None
    """Set for ``ssh`` targets, and for ``slurm``/``pbs``/``command`` reached through a login host."""
    env: EnvActivation = field(default_factory=EnvActivation)
    gpus: GpuPolicy = field(default_factory=GpuPolicy)
    max_runs: int | None = None
    """Concurrent runs on this target; ``None`` means no limit beyond the GPUs."""
    platform_factor: float = 1.0
    data_dir: str | None = None
    checkpoint_dir: str | None = None
    """Where checkpoints go (outside the code dir); default ``<root>/checkpoints``."""
    batch: BatchOptions | None = None
    templates: CommandTemplates | None = None
    python: str = "python3"
    """Interpreter used for the probe and the wrapper on the target."""
    env_check: EnvCheck = field(default_factory=EnvCheck)


@dataclass(frozen=True)
class BackoffPolicy:
    base_seconds: float = 60.0
    factor: float = 2.0
    max_seconds: float = 3600.0

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        return float(min(self.max_seconds, self.base_seconds * self.factor ** max(0, retry - 1)))


@dataclass(frozen=True)
class UnreachablePolicy:
    consecutive: int = 3
    total: int = 6
    ratio: float = 0.2
    min_probes: int = 5


@dataclass(frozen=True)
class TimeoutPolicy:
    escalate_factor: float = 2.0
    hold_factor: float = 3.0
    queue_factor: float = 4.0
    phase_guard_hours: float = 72.0
    kill_on_hold: bool = False


MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Caps on the bytes a target sends (``docs/security.md``): a target is not trusted."""

    result_bytes: int = 16 * MIB
    """A result file larger than this is refused (``invalid_result``), never copied."""
    probe_bytes: int = 64 * MIB
    """A probe answer (or any command's output) larger than this aborts the read: the target
    answered garbage this pass."""


@dataclass(frozen=True)
class Policies:
    poll_interval: float = 60.0
    connect_timeout: float = 10.0
    command_timeout: float = 120.0
    probe_concurrency: int = 8
    max_retries: int = 3
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    unreachable: UnreachablePolicy = field(default_factory=UnreachablePolicy)
    timeouts: TimeoutPolicy = field(default_factory=TimeoutPolicy)
    prune: bool = False
    """Kill and forget runs whose experiment left the spec."""
    pause: bool = False
    """Start nothing new (no launch, no retry); live runs are still observed, collected and guarded.
    The seed's PAUSE, as one committed line."""
    restart_on_spec_change: bool = False
    """Restart a running experiment whose spec changed (else it shows as out of sync)."""
    remediation: tuple[RemediationRule, ...] = ()
    """The project's remediation rules (between the built-in ones and an experiment's own)."""
    retry_target: str = "same"
    """``same``: a retry runs where the failed attempt ran (its checkpoints are there, so
    ``--resume`` works); ``any``: wherever there is room (from scratch if the checkpoint is elsewhere)."""
    lost_grace_seconds: float = 300.0
    """How long a launched run may show neither a live process nor an exit code before it is lost."""
    env_ttl_hours: float = 24.0
    """An environment verdict older than this is checked again before the next launch there."""
    env_check_timeout: float = 300.0
    """Seconds the environment check (with its ``env_check.command``) may take; longer is ENV_FAILED."""
    progress_commit_minutes: float = 30.0
    """A job's progress (its sidecar) alone makes at most one commit per this many minutes; counters
    and heartbeats never commit alone (design invariant 11, ``reconciler.model.volatile``)."""
    archive_after_hours: float | None = 24.0
    """A phase whose experiments have all ended this long ago moves out of ``dispatch/state.json``
    into ``dispatch/archive/<phase>.json`` (``reconciler.model.archive``); ``None``: never."""
    env_check: EnvCheck = field(default_factory=EnvCheck)
    """The default ``env_check.command`` of every target."""
    limits: Limits = field(default_factory=Limits)
    """Caps on what a target sends (result files, probe answers)."""

    def env_check_command(self, target: Target) -> str | None:
        """The command ``target``'s environment check runs (its own, else the project's)."""
        return target.env_check.command or self.env_check.command


@dataclass(frozen=True)
class GitSettings:
    push: bool = False
    pull: bool = False
    remote: str = "origin"
    branch: str | None = None
    """Branch the status commits go to; ``None`` is the checked-out branch."""
    tag_phases: bool = True
    author_name: str = "reconciler"
    author_email: str = "reconciler@localhost"
    pack_loose_mib: float = 32.0
    """Past this many MiB of loose objects a status commit starts a background geometric repack
    (``gitstore.packing``); 0 leaves packing to git's own ``gc --auto``."""


@dataclass(frozen=True)
class Notifications:
    """Where events are announced; secrets come from the environment variables named here, and a
    channel is on only when its variables are set."""

    enabled: bool = True
    telegram_token_env: str | None = "TELEGRAM_BOT_TOKEN"
    telegram_chat_env: str | None = "TELEGRAM_CHAT_ID"
    webhook_env: str | None = "RECONCILER_WEBHOOK_URL"
    events: tuple[str, ...] = ("escalation", "stage_done", "phase_done", "failure_rate")
    failure_threshold: float = 0.5
    timeout_seconds: float = 5.0
    telegram_api: str = "https://api.telegram.org"


@dataclass(frozen=True)
class WandbSettings:
    project: str | None = None
    entity: str | None = None
    mode: str = "online"
    sync_offline: bool = False


@dataclass(frozen=True)
class HubSettings:
    repo: str | None = None
    repo_type: str = "model"
    cleanup_checkpoints: bool = True


@dataclass(frozen=True)
class Config:
    project: str
    targets: tuple[Target, ...]
    policies: Policies = field(default_factory=Policies)
    git: GitSettings = field(default_factory=GitSettings)
    notifications: Notifications = field(default_factory=Notifications)
    wandb: WandbSettings = field(default_factory=WandbSettings)
    hub: HubSettings = field(default_factory=HubSettings)

    def target(self, name: str) -> Target:
        return self._by_name[name]

    @functools.cached_property
    def _by_name(self) -> dict[str, Target]:
        return {t.name: t for t in self.targets}

    @functools.cached_property
    def target_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.targets)
