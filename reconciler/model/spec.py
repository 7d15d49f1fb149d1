"""Experiment specs: the typed form of ``dispatch/*.yaml`` after ``defaults:`` are applied and seeds
are expanded (one ``ExperimentSpec`` per ``<id>_s<seed>``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import Enum

from reconciler.model.ids import DEFAULT_RESULT_FILE

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
"""Ids are safe as file names and shell words."""


class Group(str, Enum):
    MAIN = "main"
    BASELINE = "baseline"
    ABLATION = "ablation"
    ANALYSIS = "analysis"


class DesiredRunState(str, Enum):
    """What the person wants for an experiment (the spec's ``state:``)."""

    ACTIVE = "active"
    HOLD = "hold"
    CANCELLED = "cancelled"


class Direction(str, Enum):
    HIGHER = "higher"
    LOWER = "lower"


class StopRule(str, Enum):
    TRAILS = "trails"
    """Cancel when the method trails the best baseline by more than the threshold."""
    MUST_BEAT = "must_beat"
    """Cancel unless the method beats the best baseline by at least the threshold (the seed's rule)."""


class MetricScale(str, Enum):
    FRACTION = "fraction"
    """Metric values are fractions (accuracy 0.905): one percentage point is 0.01."""
    PERCENT = "percent"
    """Metric values are percentages (accuracy 90.5): one percentage point is 1."""


@dataclass(frozen=True)
class EarlyStop:
    metric: str
    threshold_pct: float = 0.5
    """The margin, in percentage points (see ``scale``), that ``rule`` compares with."""
    check_after: int = 1
    """Done runs of the method on the dataset needed before the check applies."""
    direction: Direction = Direction.HIGHER
    rule: StopRule = StopRule.TRAILS
    scale: MetricScale = MetricScale.FRACTION

    @property
    def points_per_unit(self) -> float:
        """Percentage points in one unit of the metric (100 for a fraction, 1 for a percentage)."""
        return 100.0 if self.scale is MetricScale.FRACTION else 1.0


@dataclass(frozen=True)
class RemediationRule:
    """What to change in the command when an attempt fails with ``failure_class``."""

    failure_class: str
    retry: bool | None = None
    """Retry this class while retries remain; ``None``: as the level below says (built in: yes)."""
    set_args: tuple[tuple[str, str], ...] = ()
    """Flags set (or replaced) with a value, e.g. ``("--grad-clip", "1.0")``."""
    halve_args: tuple[str, ...] = ()
    """Integer flags halved (``--batch-size``)."""
    add_flags: tuple[str, ...] = ()
    drop_flags: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    defaults: tuple[tuple[str, str], ...] = ()
    """The value a ``halve_args`` flag has when the command does not give it."""


@dataclass(frozen=True)
class ExperimentSpec:
    """One experiment x seed, as the reconciler will run it."""

    id: str
    """``<base_id>_s<seed>`` when the spec had seeds, else the base id."""
    base_id: str
    command: str
    """The command template; placeholders ``{seed} {exp_id} {checkpoint_dir} {result_file}``
    are filled at launch, when the target is known."""
    source: str
    """``file:line`` of the spec entry in its dispatch file."""
    seed: int | None = None
    group: Group = Group.MAIN
    method: str = ""
    dataset: str = ""
    phase: str = ""
    stage: int = 1
    priority: int = 100
    """Smaller runs first (the seed used 1 = highest)."""
    expected_duration_hours: float | None = None
    vram_gb: float | None = None
    """GPU memory estimate in GB (placement may replace it by a measurement: ``model.vram``)."""
    vram_probe: bool = False
    """``vram_gb: probe``: placed only with a measurement (``reconcile probe-vram``)."""
    gpus: int | None = None
    """GPUs needed; ``None`` means 1 on a GPU target and 0 on a CPU target."""
    targets: tuple[str, ...] = ()
    """Eligible targets; empty means every target."""
    result_file: str = DEFAULT_RESULT_FILE
    max_retries: int | None = None
    """``None`` means the policy's ``max_retries``."""
    remediation: tuple[RemediationRule, ...] = ()
    early_stop: EarlyStop | None = None
    state: DesiredRunState = DesiredRunState.ACTIVE
    env: tuple[tuple[str, str], ...] = ()
    metrics: tuple[str, ...] = ()
    description: str = ""
    on_change: str | None = None
    """``restart``: a changed command restarts a running attempt; ``keep``: it never does;
    ``None``: the policy ``restart_on_spec_change`` decides."""
    extra: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    __slots__ = ("__dict__", "__weakref__", "_result_path", "_spec_hash")
    """``spec_hash`` and ``result_path`` are computed once and kept in slots, not in the instance
    dict: a dict that only ever holds the fields stays compact (its keys shared by every spec),
    which a planning pass over thousands of specs reads far faster."""

    def __getstate__(self) -> tuple[dict[str, object], dict[str, object]]:
        """The fields, and the values kept in slots (derived from the fields alone, so a copy or
        a pickle may carry them: a cached desired state does not hash 100,000 specs again)."""
        kept = {name: getattr(self, name) for name in ("_result_path", "_spec_hash") if hasattr(self, name)}
        return self.__dict__, kept

    def __setstate__(self, state: object) -> None:
        fields, kept = state if isinstance(state, tuple) else (state, {})
        self.__dict__.update(fields)  # the instance dict shares its keys with every spec
        for name, value in kept.items():
            object.__setattr__(self, name, value)

    @property
    def essence(self) -> dict[str, object]:
        """The fields whose change means the run is out of sync (not priority, state, notes)."""
        return {
            "command": self.command,
            "seed": self.seed,
            "result_file": self.result_file,
            "gpus": self.gpus,
            "env": sorted(self.env),
        }

    @property
    def spec_hash(self) -> str:
        kept: str | None = getattr(self, "_spec_hash", None)  # a slot, set once
        if kept is not None:
            return kept
        blob = json.dumps(self.essence, sort_keys=True, separators=(",", ":"))
        value = hashlib.sha256(blob.encode()).hexdigest()[:16]
        object.__setattr__(self, "_spec_hash", value)  # computed once (frozen: not through __setattr__)
        return value

    def render(self, text: str, checkpoint_dir: str, result_file: str | None = None) -> str:
        """Fill the placeholders of ``text`` (a command or path template) for this experiment.

        ``result_file`` is where the run writes its result (default: the project-relative path)."""
        values = {
            "seed": "" if self.seed is None else str(self.seed),
            "exp_id": self.id,
            "checkpoint_dir": checkpoint_dir,
            "result_file": result_file if result_file is not None else self.result_path,
        }
        out = text
        for key, value in values.items():
            out = out.replace("{" + key + "}", value)
        return out

    @property
    def result_path(self) -> str:
        """The result file path relative to the project (placeholders filled)."""
        kept: str | None = getattr(self, "_result_path", None)
        if kept is not None:
            return kept
        seed = "" if self.seed is None else str(self.seed)
        value = self.result_file.replace("{exp_id}", self.id).replace("{seed}", seed)
        object.__setattr__(self, "_result_path", value)  # computed once, as spec_hash
        return value


PLACEHOLDERS = ("seed", "exp_id", "checkpoint_dir", "result_file")
