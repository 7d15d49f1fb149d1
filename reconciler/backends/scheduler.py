"""What a batch-scheduler adapter is: pure builders, parsers and a state table.

``BatchRunner`` (``reconciler.backends.batch``) drives any ``Scheduler`` through the target's
transport: it writes the job script into the run dir, submits it, asks for the state of every job
of this project in the same command as the run-dir probe, and cancels. The adapters (``slurm``,
``pbs``, ``cmdtemplate``) only build shell text and parse what the scheduler printed; nothing in
them runs a process, reads a clock or touches a file.

The run dir protocol is the one of the SSH targets (``wrapper``): the job script ``exec``s
``wrapper.sh`` in the foreground, so ``launch.lock``, ``pid``, ``heartbeat`` and ``exit_code`` are
written by the job on the cluster's shared filesystem and the probe reads them from the login host.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from reconciler.errors import InvalidTarget, ReconcilerError, SchedulerBusy, SubmitRejected
from reconciler.model.config import BatchOptions


class JobState(str, Enum):
    """Scheduler states in our vocabulary (the raw state is kept beside it as evidence)."""

    QUEUED = "queued"
    """Waiting to start (SLURM PENDING/CONFIGURING, PBS Q/W/T)."""
    HELD = "held"
    """Held in the queue by a person or the scheduler (PBS H, SLURM PENDING with a hold reason)."""
    RUNNING = "running"
    """Started (SLURM RUNNING/COMPLETING, PBS R/E/B)."""
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    """Walltime exceeded."""
    NODE_FAIL = "node_fail"
    PREEMPTED = "preempted"
    OUT_OF_MEMORY = "out_of_memory"
    UNKNOWN = "unknown"

    @property
    def finished(self) -> bool:
        return self not in (JobState.QUEUED, JobState.HELD, JobState.RUNNING, JobState.UNKNOWN)


@dataclass(frozen=True)
class JobInfo:
    """One job as the scheduler reported it."""

    job_id: str
    name: str | None
    state: JobState
    raw_state: str
    """The scheduler's own word (``PENDING``, ``R``, ``F``, ``TIMEOUT``), kept as evidence."""
    exit_status: int | None = None
    """The scheduler's exit status of the job script when it reports one."""
    reason: str | None = None
    """Why it waits or ended (SLURM's reason, PBS ``comment``), when reported."""


@dataclass(frozen=True)
class JobRequest:
    """Everything a job script needs; built by ``BatchRunner`` from a ``Launch``."""

    name: str
    """Job name: carries the experiment id and the attempt (``job_name``)."""
    run_dir: str
    """Absolute run dir on the shared filesystem; the script is written there as ``job.sh``."""
    wrapper: str
    """Absolute path of ``wrapper.sh`` (the script's last line ``exec``s it)."""
    output: str
    """Absolute path of the scheduler's own stdout/stderr file (joined)."""
    walltime_seconds: int
    gpus: int
    options: BatchOptions = field(default_factory=BatchOptions)


class Scheduler(Protocol):
    """A scheduler adapter: pure text in, text out."""

    kind: str
    """``slurm``, ``pbs`` or ``command``."""

    def job_script(self, request: JobRequest) -> str:
        """The batch script (directives, module loads, ``exec /bin/sh <wrapper>``)."""
        ...

    def submit_command(self, script_path: str, request: JobRequest) -> str:
        """Shell text that submits ``script_path`` and prints the scheduler's answer."""
        ...

    def parse_submit(self, stdout: str) -> str:
        """The job id from the submit command's output; ``SchedulerOutputError`` when there is none."""
        ...

    def status_command(self, job_ids: Sequence[str], names: Sequence[str]) -> str:
        """One shell command reporting every job in ``job_ids`` and every job named in ``names``
        (live and, where the scheduler keeps them, finished). Must exit 0 when some or all of the
        jobs are unknown to the scheduler (they left its memory): unknown is not an error."""
        ...

    def parse_status(self, stdout: str) -> Mapping[str, JobInfo]:
        """Jobs by id from the status command's output. Never raises on well-formed but empty
        output; raises ``SchedulerOutputError`` on output it cannot read."""
        ...

    def cancel_command(self, job_id: str) -> str:
        """Shell text that cancels the job (exit 0 when it is already gone)."""
        ...

    def find_command(self, name: str) -> str:
        """Shell text printing the ids of live jobs named ``name`` (for adoption after a crash
        between submit and record; ``squeue --name``, ``qselect -N``)."""
        ...

    def parse_find(self, stdout: str) -> list[str]:
        """Job ids printed by ``find_command`` (empty list when none)."""
        ...

    def submit_error(self, status: int, output: str) -> ReconcilerError:
        """What a failed submit means (``submit_error`` below with the tool's "not now" words):
        ``SchedulerBusy`` (the job was not submitted; tried again next pass, no retry used),
        ``InvalidTarget`` (no such command) or ``SubmitRejected`` (stalls until the spec changes)."""
        ...


def submit_error(tool: str, status: int, output: str, transient: Sequence[str]) -> ReconcilerError:
    """Classify a submit command's failure from its exit status and output."""
    text = output.strip()[-500:] or f"{tool} exited {status} with no message"
    if status == 127 or "command not found" in text or ": not found" in text:
        return InvalidTarget(f"{tool} is not available: {text}", "InvalidTarget")
    if any(word.lower() in text.lower() for word in transient):
        return SchedulerBusy(f"{tool} cannot take the job now: {text}")
    return SubmitRejected(f"{tool} rejected the job: {text}", "SubmitRejected")


def job_name(project: str, exp_id: str, attempt: int, run_dir: str) -> str:
    """``rc.<project>.<exp_id>.<attempt>.<hash of the run dir>``: how a job is found again after a
    crash between submit and record. The run dir's hash keeps two copies of one project (two
    clones, a test and a real run) from adopting each other's jobs. (PBS Pro allows 236
    characters in a job name; SLURM has no short limit.)"""
    digest = hashlib.sha256(run_dir.encode()).hexdigest()[:8]
    return f"rc.{project}.{exp_id}.{attempt}.{digest}"


def walltime_seconds(expected_hours: float | None, options: BatchOptions) -> int:
    """``ceil(walltime_factor x expected hours)`` whole hours (the seed's rule), as seconds;
    ``default_walltime_hours`` when the experiment has no estimate."""
    hours = options.default_walltime_hours if not expected_hours else expected_hours * options.walltime_factor
    return math.ceil(round(hours, 6)) * 3600


def hms(seconds: int) -> str:
    """``HH:MM:SS`` (hours may exceed 24), as both ``#SBATCH --time`` and ``walltime=`` accept."""
    h, rest = divmod(max(0, int(seconds)), 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"
