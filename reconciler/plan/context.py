"""What one planning call knows: the inputs, the clock value, and the bookkeeping of the
placements made so far in this pass (so later experiments see the earlier reservations)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from reconciler.model.actions import CheckEnv
from reconciler.model.config import Policies, Target
from reconciler.model.desired import DesiredState
from reconciler.model.env import EnvVerdict
from reconciler.model.observed import ObservedState
from reconciler.model.spec import ExperimentSpec
from reconciler.model.status import StateFile
from reconciler.model.vram import VramEstimate


@dataclass
class Context:
    desired: DesiredState
    recorded: StateFile
    observed: ObservedState
    now: datetime
    inflight: frozenset[tuple[str, int, str]] = frozenset()
    """(exp_id, attempt, target) launches a crashed pass may have started."""
    env: Mapping[str, EnvVerdict] = field(default_factory=dict)
    """The last environment verdict of each target (``progress/env_<TARGET>.json``)."""
    specs: dict[str, ExperimentSpec] = field(default_factory=dict)
    runs_on_target: Counter[str] = field(default_factory=Counter)
    runs_on_gpu: Counter[tuple[str, int]] = field(default_factory=Counter)
    reserved_mb: defaultdict[tuple[str, int], float] = field(default_factory=lambda: defaultdict(float))
    shown_mb: defaultdict[tuple[str, int], float] = field(default_factory=lambda: defaultdict(float))
    """Per GPU: memory of live runs of ours already taken as showing in ``nvidia-smi``'s used figure
    (``place.count_active``), never more than that figure less the other listed processes."""
    vram: Mapping[str, VramEstimate] = field(default_factory=dict)
    """The VRAM estimate of each spec and where it came from, when a measurement or a
    ``vram_gb: probe`` spec is in play (``plan.vram``); empty otherwise (the specs' own)."""
    env_broken: dict[str, EnvVerdict] | None = None
    """Targets whose environment still fails at this commit after the repair ladder (computed
    once per plan by ``plan.envcheck.env_escalation``)."""
    env_checks: dict[str, CheckEnv] = field(default_factory=dict)
    """Targets that need an environment check before this pass's launches there (target -> CheckEnv)."""
    env_states: dict[str, tuple[Target, EnvVerdict | None]] = field(default_factory=dict)
    """``place.env_state`` of each target this pass (with the target it was computed for)."""
    now_iso: str = ""
    reservations: int = 0
    """Slots counted or reserved so far in this pass (each one changes what later placements see)."""
    unplaceable: dict[tuple[object, ...], str] = field(default_factory=dict)
    """Why nothing fitted, by what ``place`` reads of a spec (eligible targets, GPU count, VRAM
    estimate) and ``reservations``: a queue of alike experiments is refused once until the next
    reservation."""

    policies: Policies = field(init=False)
    """``desired.config.policies`` (read for every entry, every pass)."""
    observed_names: tuple[str, ...] = field(init=False)
    """The observed targets' names, sorted (every pending entry looks for its run dir on each)."""

    def __post_init__(self) -> None:
        self.specs = self.desired.by_id()
        self.observed_names = tuple(sorted(self.observed.targets))
        self.now_iso = iso(self.now)
        self.policies = self.desired.config.policies

    @property
    def project(self) -> str:
        return self.desired.config.project


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
