"""What one probe of a target saw. Unknown stays unknown: a target that did not answer has
``reachable=False`` and no runs, which the planner must never read as "the runs are gone"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.model.leases import Lease

FATAL_MARKERS = ("out of memory", "outofmemoryerror", "cublas_status_alloc_failed", "non-finite loss")
FATAL_WORDS = ("nan", "inf")
"""A live run's log tail can hold a fatal line (CUDA out of memory, NaN loss) only when its
lowercased text holds one of ``FATAL_MARKERS`` or ends a word with one of ``FATAL_WORDS``. The probe
sends a live run's tail only then (the markers travel in its request), and the planner matches its
regexes only then (``plan.failure``): most passes over healthy runs move and scan no log text."""


@dataclass(frozen=True)
class LaunchRecord:
    """What the launch chose for a run, as the run dir holds it (``launch.json``, written before
    the process starts; for run dirs of older versions only ``gpus``, read from the wrapper's
    ``CUDA_VISIBLE_DEVICES``). ``None`` fields were not recorded."""

    gpus: tuple[int, ...] | None = None
    command: str | None = None
    commit: str | None = None
    vram_gb: float | None = None


@dataclass(frozen=True)
class RunObservation:
    """One run dir ``<root>/runs/<exp_id>/<attempt>/`` as the probe saw it."""

    exp_id: str
    attempt: int
    token: str | None = None
    launched: bool = False
    """The wrapper took the run dir's launch lock (a process was started for it)."""
    pid: int | None = None
    start_time: str | None = None
    alive: bool = False
    """The recorded pid is running, is not a zombie, and has the recorded start time."""
    exit_code: int | None = None
    heartbeat_age: float | None = None
    """Seconds since the wrapper last touched ``heartbeat``."""
    result_size: int | None = None
    """Size of the result file in the run's code dir, ``None`` when absent."""
    sidecar: Mapping[str, object] | None = None
    log_tail: tuple[str, ...] = ()
    """The last lines of ``stdout.log``; empty for a live process (no exit code, no batch job)
    whose tail holds no fatal marker."""
    job_id: str | None = None
    job_state: str | None = None
    """Batch scheduler state, mapped to our vocabulary by the scheduler adapter."""
    age: float | None = None
    """Seconds since the run dir was created."""
    launch: LaunchRecord | None = None
    """What the launch chose (GPUs, command, commit), for adopting the run after a crash."""
    started_age: float | None = None
    """Seconds since the wrapper recorded its pid (the process's start), ``None`` before."""
    group: tuple[int, ...] | None = None
    """Live processes left in the run's process group once the run ended (its leader, the wrapper,
    is gone or has recorded an exit code), pid reuse excluded; ``None`` when not looked at (the
    run is live, or no pid recorded)."""
    oom_evidence: tuple[str, ...] = ()
    """For a run that exited 137: the kernel's OOM-killer evidence the probe found (the memory
    cgroup's ``oom_kill`` count went up, or kernel log lines naming the run's pids)."""


@dataclass(frozen=True)
class GpuObservation:
    index: int
    uuid: str
    name: str
    memory_total_mb: float | None
    memory_used_mb: float | None
    memory_free_mb: float | None
    utilization_pct: float | None
    processes: tuple[tuple[int, float | None], ...] = ()
    """(pid, used MiB) of every compute process on this GPU, ours or not."""


@dataclass(frozen=True)
class TargetObservation:
    target: str
    reachable: bool
    error: str | None = None
    runs: Mapping[tuple[str, int], RunObservation] = field(default_factory=dict)
    gpus: tuple[GpuObservation, ...] | None = None
    """``None``: the target has no ``nvidia-smi`` (a CPU target) or GPUs were not probed."""
    host: str | None = None
    """The target's hostname as it reported it."""
    root: str | None = None
    """The project's root on the target as an absolute path (``~`` and relative paths resolved)."""
    free_disk_gb: float | None = None
    commands: int = 0
    """Remote commands this probe issued (the benchmark checks it equals 1)."""
    gpu_groups: Mapping[int, int] = field(default_factory=dict)
    """Process group of each GPU compute process (pid -> pgid) that belongs to a live run of ours
    (or of a live lease's run): the memory ``nvidia-smi`` attributes to a run is that of the
    processes in its group."""
    leases: tuple[Lease, ...] = ()
    """The live GPU leases in the target's lease directory, every project's (``model.leases``)."""

    def run(self, exp_id: str, attempt: int) -> RunObservation | None:
        return self.runs.get((exp_id, attempt))


@dataclass(frozen=True)
class ObservedState:
    targets: Mapping[str, TargetObservation] = field(default_factory=dict)

    def target(self, name: str) -> TargetObservation | None:
        return self.targets.get(name)
