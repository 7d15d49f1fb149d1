"""The recorded status: ``dispatch/state.json``, written only by the reconciler.

Field names and status values stay compatible with the seed system (``id, status, command, host,
gpu, pid, job_id, started, finished, retry_count, notes, wandb_run_id, git_commit, result_file``);
ours are added beside them (``target, attempt, attempts, spec_hash, failure_class, conditions,
next_retry_at, waiting_reason, unreachable``). Serialisation is canonical: sorted keys, entries
sorted by id, no field that changes when nothing happened.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from reconciler.model.archive import ArchivedPhase, archived_from_dict, canonical_text
from reconciler.model.escalation import Escalation
from reconciler.model.fastdc import build as _build
from reconciler.model.fastdc import known as _known
from reconciler.model.fastdc import name_set as _name_set
from reconciler.model.fastdc import plain as _plain
from reconciler.model.ids import default_result_file
from reconciler.model.jsontext import JsonTextError, loads_strict, within_limits
from reconciler.model.statecheck import check_state
from reconciler.model.vram import LiveMemory

STATE_VERSION = 1


class Status(str, Enum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ON_HOLD = "on_hold"
    UNREACHABLE = "unreachable"

    @property
    def final(self) -> bool:
        return self in _FINAL

    @property
    def active(self) -> bool:
        """A process or job of ours may exist on a target."""
        return self in _ACTIVE


_FINAL = frozenset((Status.DONE, Status.FAILED, Status.CANCELLED))
_ACTIVE = frozenset((Status.QUEUED, Status.RUNNING, Status.UNREACHABLE))


@dataclass(frozen=True)
class Attempt:
    """One launch of an experiment; its run dir is ``<root>/runs/<exp_id>/<n>/`` (for a run the
    seed started, ``origin: seed``: the seed's project dir on the target, ``model.seedrun``)."""

    n: int
    target: str
    command: str
    run_dir: str
    token: str
    host: str | None = None
    gpus: tuple[int, ...] = ()
    pid: int | None = None
    start_time: str | None = None
    """Process start time as ``/proc/<pid>/stat`` field 22 (clock ticks since boot)."""
    job_id: str | None = None
    started: str | None = None
    finished: str | None = None
    exit_code: int | None = None
    git_commit: str | None = None
    failure_class: str | None = None
    evidence: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    origin: str | None = None
    """``seed``: a run the seed system started, adopted by ``import-seed`` (``model.seedrun``);
    ``None``: launched by us (written only when set)."""

    def to_dict(self) -> dict[str, Any]:
        d = _plain(self)
        if d["origin"] is None:
            del d["origin"]
        d["gpus"] = list(self.gpus)
        d["evidence"] = list(self.evidence)
        d["env"] = dict(self.env)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Attempt:
        kw = _known(cls, d)
        kw["gpus"] = tuple(int(g) for g in d.get("gpus") or ())
        kw["evidence"] = tuple(str(x) for x in d.get("evidence") or ())
        kw["env"] = tuple(sorted((str(k), str(v)) for k, v in (d.get("env") or {}).items()))
        return _build(cls, kw)


@dataclass(frozen=True)
class Condition:
    """Flux-style condition: ``type`` (Ready, Stalled, OutOfSync, ...), ``status``, ``reason``."""

    type: str
    status: bool
    reason: str
    message: str = ""
    last_transition: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Condition:
        return _build(cls, _known(cls, d))


@dataclass(frozen=True)
class Unreachable:
    """Probe accounting for a run whose target did not answer."""

    consecutive: int = 0
    total: int = 0
    probes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Unreachable:
        return _build(cls, _known(cls, d))


_QUIET = Unreachable()
_QUIET_DICT = _QUIET.to_dict()
"""The counters of a target that always answered (most entries): one shared value."""


VOLATILE_FIELDS = ("unreachable", "sidecar", "waiting_reason", "pid", "gpu_memory")
"""The fields of an entry that change without a transition (design invariant 11): the probe
counters of a silent target (``unreachable``), what the job reports through its sidecar
(``sidecar``: progress, metrics so far, the runtime's ``updated`` heartbeat), why a pending
run waits (``waiting_reason``: free memory, disk space and backoff times move pass after pass)
and the process of a run that was already running (``pid``, with the current attempt's ``pid`` and
``start_time``: a batch job's process is seen a pass or more after the scheduler started it), and
the GPU memory a live run holds (``gpu_memory``). A pass keeps their
newest values in ``.reconciler/volatile.json`` (never committed) and commits them only folded into
the commit of a transition of the same entry (or a decision, an escalation, a result), or in a
progress commit at most once per ``policies.progress_commit_minutes``. ``dispatch/state.json``
holds their last committed values; the planner reads both merged
(``reconciler.model.volatile``). Every other field is committed whenever it changes."""

HEARTBEAT_KEYS = frozenset({"updated", "exp_id", "attempt"})
"""Sidecar keys that only say the job is alive (the runtime stamps ``updated`` and which run it is
on every write): they never make a progress commit on their own."""


@dataclass(frozen=True)
class StatusEntry:
    """One experiment x seed in ``dispatch/state.json``."""

    id: str
    status: Status = Status.PENDING
    command: str = ""
    phase: str = ""
    group: str = "main"
    method: str = ""
    dataset: str = ""
    seed: int | None = None
    stage: int = 1
    priority: int = 100
    expected_duration_hours: float | None = None
    duration_basis: str | None = None
    host: str | None = None
    gpu: int | None = None
    pid: int | None = None
    job_id: str | None = None
    started: str | None = None
    finished: str | None = None
    retry_count: int = 0
    max_retries: int = 3
    notes: str = ""
    result_file: str | None = None
    checkpoint_dir: str | None = None
    git_commit: str | None = None
    wandb_run_id: str | None = None
    hf_artifact_url: str | None = None
    experiment_id: str | None = None
    description: str = ""
    """The spec's description (the seed's dashboard shows it); written only when not empty."""
    results: tuple[tuple[str, float], ...] = ()
    """A done run's final metrics: each metric's mean over its result file's rows (the seed's
    ``results``, which its dashboard reads); empty until the result is collected."""
    # ours
    target: str | None = None
    attempt: int = 0
    """Number of the newest attempt (0 before the first launch)."""
    attempts: tuple[Attempt, ...] = ()
    spec_hash: str | None = None
    """Hash of the spec fields ``command`` was taken from (that of the run, not of a later edit)."""
    manual_retries: int = 0
    """Attempts a person asked for (``retry`` decisions); ``retry_count`` counts automatic retries."""
    failure_class: str | None = None
    next_retry_at: str | None = None
    waiting_reason: str | None = None
    """Why a pending experiment was not placed (shown by ``reconcile status``)."""
    conditions: tuple[Condition, ...] = ()
    unreachable: Unreachable = _QUIET  # frozen: one shared value (as ``from_dict`` gives)
    escalation: Escalation | None = None
    """The newest escalation (open or closed); rendered as ``progress/escalate_<id>.md``."""
    sidecar: tuple[tuple[str, object], ...] = ()
    """The job's own fields (final metrics, progress) from its ``status.json``."""
    gpu_memory: LiveMemory | None = None
    """The GPU memory ``nvidia-smi`` lists for the current attempt's process group, its peak and
    its reservation (``None``: not seen on a GPU)."""
    extra: tuple[tuple[str, Any], ...] = ()
    """Fields we do not model (seed fields such as ``wandb_artifact``), kept as they were."""

    @property
    def result_path(self) -> str:
        """The result file, relative to the run's code dir and to the project (the default unless
        the spec named one)."""
        return self.result_file or default_result_file(self.id)

    @property
    def current(self) -> Attempt | None:
        attempts = self.attempts
        if attempts and attempts[-1].n == self.attempt:  # the usual case: the newest is last
            return attempts[-1]
        for a in attempts:
            if a.n == self.attempt:
                return a
        return None

    def condition(self, type_: str) -> Condition | None:
        for c in self.conditions:
            if c.type == type_:
                return c
        return None

    def volatile(self) -> dict[str, Any]:
        """The ``VOLATILE_FIELDS`` as JSON values (``.reconciler/volatile.json``'s form)."""
        current = self.current
        return {
            "unreachable": self.unreachable.to_dict(),
            "sidecar": dict(self.sidecar),
            "waiting_reason": self.waiting_reason,
            "pid": self.pid,
            "process": [current.pid, current.start_time] if current is not None else None,
            "gpu_memory": self.gpu_memory.to_dict() if self.gpu_memory is not None else None,
        }

    def with_volatile(self, values: Mapping[str, Any]) -> StatusEntry:
        """This entry with the ``VOLATILE_FIELDS`` named in ``values`` (JSON form) replaced."""
        changes: dict[str, Any] = {}
        if isinstance(values.get("unreachable"), Mapping):
            changes["unreachable"] = Unreachable.from_dict(values["unreachable"])
        if isinstance(values.get("sidecar"), Mapping):
            changes["sidecar"] = tuple(sorted(values["sidecar"].items()))
        reason = values.get("waiting_reason", self.waiting_reason)
        if reason is None or isinstance(reason, str):
            changes["waiting_reason"] = reason
        memory = LiveMemory.from_value(values["gpu_memory"]) if "gpu_memory" in values else self.gpu_memory
        if memory != self.gpu_memory:
            changes["gpu_memory"] = memory
        pid = values.get("pid", self.pid)
        if pid is None or _is_pid(pid):
            changes["pid"] = pid
        current, process = self.current, values.get("process")
        if current is not None and isinstance(process, list) and len(process) == 2:
            attempt_pid, start_time = process
            valid = (attempt_pid is None or _is_pid(attempt_pid)) and (
                start_time is None or isinstance(start_time, str)
            )
            if valid and (current.pid, current.start_time) != (attempt_pid, start_time):
                changed = dataclasses.replace(current, pid=attempt_pid, start_time=start_time)
                changes["attempts"] = tuple(changed if a is current else a for a in self.attempts)
        return dataclasses.replace(self, **changes) if changes else self

    def same_committed(self, other: StatusEntry) -> bool:
        """Equal apart from the ``VOLATILE_FIELDS`` (no transition between the two)."""
        return self.with_volatile(other.volatile()) == other

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.extra)
        d.update(_plain(self))
        del d["extra"]
        d["status"] = self.status.value
        d["attempts"] = [a.to_dict() for a in self.attempts]
        d["conditions"] = [c.to_dict() for c in sorted(self.conditions, key=lambda c: c.type)]
        d["unreachable"] = self.unreachable.to_dict()
        d["sidecar"] = dict(self.sidecar)
        d["escalation"] = self.escalation.to_dict() if self.escalation else None
        del d["gpu_memory"]  # written only for a run seen on a GPU
        if self.gpu_memory is not None:
            d["gpu_memory"] = self.gpu_memory.to_dict()
        if not self.description:
            del d["description"]
            if "description" in self.extra_names:
                d["description"] = dict(self.extra)["description"]
        del d["results"]  # written only when there are some (a seed's own, unread, stays as it was)
        if self.results:
            d["results"] = dict(self.results)
        elif "results" in self.extra_names:
            d["results"] = dict(self.extra)["results"]
        return d

    @property
    def extra_names(self) -> frozenset[str]:
        return frozenset(k for k, _ in self.extra)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StatusEntry:
        kw = _known(cls, d)
        kw["status"] = _status(d.get("status"))
        kw["attempts"] = tuple(Attempt.from_dict(a) for a in d.get("attempts") or ())
        kw["conditions"] = tuple(Condition.from_dict(c) for c in d.get("conditions") or ())
        silent = d.get("unreachable")
        kw["unreachable"] = _QUIET if not silent or silent == _QUIET_DICT else Unreachable.from_dict(silent)
        kw["sidecar"] = tuple(sorted((d.get("sidecar") or {}).items()))
        kw["escalation"] = Escalation.from_value(d.get("escalation"))
        kw["gpu_memory"] = LiveMemory.from_value(d.get("gpu_memory"))
        results = _results(d.get("results"))
        kw["results"] = results if results is not None else ()
        names = _name_set(cls)
        unread = {"results"} if results is None and "results" in d else set()
        if not isinstance(d.get("description", ""), str):  # a seed's object: kept as it was, unread
            unread.add("description")
            kw.pop("description", None)
        if unread or not names.issuperset(d.keys()):
            kw["extra"] = tuple(sorted((k, v) for k, v in d.items() if k not in names or k in unread))
        return _build(cls, kw)


def _results(value: Any) -> tuple[tuple[str, float], ...] | None:
    """``{metric: number}`` as the field holds it; ``None`` for anything else (kept unread)."""
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        return None
    pairs = []
    for key, number in value.items():
        if not isinstance(key, str) or isinstance(number, bool) or not isinstance(number, (int, float)):
            return None
        pairs.append((key, float(number)))
    return tuple(pairs)


_SEED_ALIASES = {"dead": Status.FAILED, "retrying": Status.PENDING, "todo": Status.PENDING}


def _status(value: Any) -> Status:
    """The seed's drifted vocabulary (``dead``, ``retrying``, ``todo``) maps onto ours."""
    if isinstance(value, str):
        if value in _SEED_ALIASES:
            return _SEED_ALIASES[value]
        return Status(value)
    return Status.PENDING


@dataclass(frozen=True)
class StateFile:
    """The whole ``dispatch/state.json``."""

    project: str
    entries: tuple[StatusEntry, ...] = ()
    updated: str = ""
    decisions_applied: tuple[str, ...] = ()
    """Ids of decisions from ``dispatch/decisions.yaml`` already carried out."""
    stages_approved: tuple[int, ...] = ()
    version: int = STATE_VERSION
    archived: tuple[ArchivedPhase, ...] = ()
    """The phases moved out to ``dispatch/archive/`` (``reconciler.model.archive``), by phase."""

    def by_id(self) -> dict[str, StatusEntry]:
        return {e.id: e for e in self.entries}

    def get(self, exp_id: str) -> StatusEntry | None:
        for e in self.entries:
            if e.id == exp_id:
                return e
        return None

    def with_entries(self, entries: Mapping[str, StatusEntry] | tuple[StatusEntry, ...]) -> StateFile:
        values = entries.values() if isinstance(entries, Mapping) else entries
        return dataclasses.replace(self, entries=tuple(sorted(values, key=lambda e: e.id)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "project": self.project,
            "updated": self.updated,
            "decisions_applied": sorted(self.decisions_applied),
            "stages_approved": sorted(self.stages_approved),
            "experiments": [e.to_dict() for e in sorted(self.entries, key=lambda e: e.id)],
        } | ({"archived": {a.phase: a.to_dict() for a in self.archived}} if self.archived else {})

    def dumps(self) -> str:
        """Canonical text: sorted keys, two-space indent, one experiment per line (a commit's
        diff shows exactly the experiments it changed; C-speed encoding of 30,000 entries),
        trailing newline."""
        return self.encoded()[0]

    def encoded(self) -> tuple[str, dict[str, Any]]:
        """``dumps`` and the JSON document it holds (``from_dict`` of it is what ``loads`` of
        the text gives)."""
        data = within_limits(self.to_dict())  # a job's sidecar may hold NaN: written as null
        return canonical_text(data), data

    def same_content(self, other: StateFile) -> bool:
        """Equal apart from ``updated`` (which changes only when something else did)."""
        return dataclasses.replace(self, updated="") == dataclasses.replace(other, updated="")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StateFile:
        return cls(
            project=str(d.get("project", "")),
            entries=tuple(sorted((StatusEntry.from_dict(e) for e in d.get("experiments") or ()), key=lambda e: e.id)),
            updated=str(d.get("updated") or ""),
            decisions_applied=tuple(sorted(str(x) for x in d.get("decisions_applied") or ())),
            stages_approved=tuple(sorted(int(x) for x in d.get("stages_approved") or ())),
            version=int(d.get("version") or STATE_VERSION),
            archived=archived_from_dict(d.get("archived")),
        )

    @classmethod
    def checked(cls, data: Mapping[str, Any]) -> StateFile:
        """``from_dict`` of a document that passes the state file's checks (else ``ValueError``)."""
        check_state(data)
        return cls.from_dict(data)

    @classmethod
    def loads(cls, text: str | bytes) -> StateFile:
        """The status held by ``text``; a ``ValueError`` (``JsonTextError``) for text that is not
        JSON within the limits of ``jsontext`` (deep nesting, NaN, ``1e999``, not UTF-8), or
        (``StateCheckError``) holds an id, result path or run dir the reconciler never writes."""
        data = loads_strict(text)
        if not isinstance(data, dict):
            raise JsonTextError(f"the status must be a JSON object, not {type(data).__name__}")
        check_state(data)  # ids, result paths and run dirs as the reconciler writes them
        return cls.from_dict(data)


def _is_pid(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31
