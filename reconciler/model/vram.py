"""GPU memory as a measured fact (issue 18): ``experiments/vram.json`` and the estimate placement uses.

``reconcile probe-vram`` runs an experiment briefly on a target and records what it used: the peak
of ``nvidia-smi``'s memory for the run's process group, sampled during the run, and the job's own
peak (``torch.cuda.max_memory_allocated``, reported through ``reconciler.runtime``) when it has
one, with the evidence (target, GPU model, commit, command hash, samples). The file is written by
the reconciler only and committed; a commit that touches only it is no change of desired state.

Placement reserves, for an experiment (``estimate``), in this order:

1. a measurement of the same command template at the same commit (``measured``);
2. the spec's ``vram_gb`` (``spec``), raised to the peak of a live run of the same command (any
   commit) that used more than it (``measured by <exp_id>'s live run <n>``: ``plan.vram.learned``);
3. a measurement of the same method and dataset (``measured for <method>/<dataset>``), the newest;
4. nothing: a run without an estimate holds only its slot on a GPU.

A spec with ``vram_gb: probe`` asks for a measurement: steps 1 and 3 (any commit of the same
command first), and until there is one it is not placed (``PROBE_NEEDED``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from reconciler.model.jsontext import loads_strict
from reconciler.model.spec import ExperimentSpec

VRAM_FILE = "experiments/vram.json"
MIB_PER_GB = 1024.0
PROBE_NEEDED = "vram_gb: probe and no measurement yet: run `reconcile probe-vram {exp_id}`"


@dataclass(frozen=True)
class Measurement:
    """One ``probe-vram`` of an experiment on a target."""

    exp_id: str
    base_id: str
    command_hash: str
    commit: str
    target: str
    gpu_model: str
    peak_gb: float
    """The larger of the two peaks below, in GB (GiB: 1024 MiB)."""
    measured_at: str
    method: str = ""
    dataset: str = ""
    smi_peak_mb: float | None = None
    """Peak MiB ``nvidia-smi`` listed for the run's process group."""
    torch_peak_mb: float | None = None
    """Peak MiB the job reported (``gpu_peak_mb`` in its sidecar: PyTorch's max_memory_allocated)."""
    samples: int = 0
    seconds: float = 0.0
    steps: int | None = None
    """The step limit the run was given (``RECONCILER_MAX_STEPS``)."""
    source: str = "probe-vram"
    """``probe-vram``, or ``live run <n>``: a run's attempt ``n`` used more than its reservation
    (``LiveMemory.over``) and its peak was recorded so that the next placements reserve it."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Measurement | None:
        """``None`` for a record of the wrong shape (a hand edit): it is ignored, not trusted."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        try:
            m = cls(**kw)
        except TypeError:
            return None
        peak = m.peak_gb
        texts = (m.exp_id, m.base_id, m.command_hash, m.commit, m.target, m.gpu_model, m.measured_at)
        if not all(isinstance(t, str) for t in texts) or isinstance(peak, bool):
            return None
        if not isinstance(peak, (int, float)) or not math.isfinite(peak) or peak <= 0:
            return None
        return m


@dataclass(frozen=True)
class VramBook:
    """Every measurement of the project, oldest first."""

    measurements: tuple[Measurement, ...] = ()

    @classmethod
    def loads(cls, data: bytes | str) -> VramBook:
        """The file's measurements; an unreadable file is an empty book (placement then uses the
        specs' estimates, as before any measurement)."""
        try:
            doc = loads_strict(data)
        except ValueError:
            return cls()
        items = doc.get("measurements") if isinstance(doc, dict) else None
        found = (Measurement.from_dict(m) for m in items if isinstance(m, dict)) if isinstance(items, list) else ()
        return cls(tuple(m for m in found if m is not None))

    def dumps(self) -> str:
        doc = {"version": 1, "measurements": [m.to_dict() for m in self.measurements]}
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    def add(self, m: Measurement) -> VramBook:
        """With ``m``, replacing an earlier one of the same experiment, commit and target."""
        key = (m.exp_id, m.commit, m.target)
        kept = tuple(x for x in self.measurements if (x.exp_id, x.commit, x.target) != key)
        return VramBook((*kept, m))


@dataclass(frozen=True)
class VramEstimate:
    gb: float | None
    source: str
    """``spec``, ``measured on <target> (<GPU>) at <commit>``, ``measured for <method>/<dataset>
    (<exp_id> on <target>)``, ``probe needed`` or ``none``."""

    @property
    def measured(self) -> bool:
        return self.source.startswith("measured")

    def describe(self) -> str:
        return f"{self.gb:g} GB ({self.source})" if self.gb is not None else self.source


OVER = "OverReservation"
"""The condition of an entry whose live run used more GPU memory than placement reserved for it."""
OVER_MARGIN_MB = 64.0
"""A run is over its reservation when its peak on one GPU passes the reserved MiB by more than
this (allocators round; a few MiB over is noise)."""
LEARN_STEP = 1.05
"""A live run's recorded peak is raised again only when the run passes it by 5 %: a run whose
memory creeps up commits a measurement a handful of times, not on every pass."""


@dataclass(frozen=True)
class LiveMemory:
    """What ``nvidia-smi`` lists for a live run of ours: the processes of its process group (its
    wrapper's pid), on each of its GPUs. Kept with the entry's volatile fields (changed values are
    committed only with a transition): ``reconcile status`` and the dashboard show it beside the
    reservation."""

    gpus: tuple[tuple[int, float], ...] = ()
    """(GPU index, MiB now) for each GPU where the run has processes."""
    peak_mb: float = 0.0
    """The most MiB the run held on any one GPU, over every probe of this attempt (with the
    job's own peak, ``gpu_peak_mb`` in its sidecar, when it reports one)."""
    reserved_mb: float | None = None
    """What placement reserved per GPU for the run (its estimate, before ``vram_factor``);
    ``None``: no estimate (it holds only its slot)."""
    at: str = ""
    """When the peak was seen (ISO 8601)."""

    @property
    def now_mb(self) -> float:
        return sum(mb for _, mb in self.gpus)

    @property
    def over(self) -> bool:
        """More than the reservation on one GPU (``OVER_MARGIN_MB`` of noise allowed)."""
        return self.reserved_mb is not None and self.peak_mb > self.reserved_mb + OVER_MARGIN_MB

    def describe(self) -> str:
        """``5.1 GB now, peak 6.2 of 4 GB reserved (over)``."""
        text = f"{self.now_mb / MIB_PER_GB:.1f} GB now, peak {self.peak_mb / MIB_PER_GB:.1f}"
        if self.reserved_mb is None:
            return text + " GB (no reservation)"
        return text + f" of {self.reserved_mb / MIB_PER_GB:g} GB reserved" + (" (over)" if self.over else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpus": [[index, mb] for index, mb in self.gpus],
            "peak_mb": self.peak_mb,
            "reserved_mb": self.reserved_mb,
            "at": self.at,
        }

    @classmethod
    def from_value(cls, value: object) -> LiveMemory | None:
        """``None`` for anything not of the shape ``to_dict`` writes (a hand edit is not trusted)."""
        if not isinstance(value, Mapping):
            return None
        peak, reserved, at = value.get("peak_mb"), value.get("reserved_mb"), value.get("at", "")
        pairs = value.get("gpus")
        if not isinstance(peak, (int, float)) or not _number(peak) or not isinstance(at, str):
            return None
        if reserved is not None and not (isinstance(reserved, (int, float)) and _number(reserved)):
            return None
        if not isinstance(pairs, list):
            return None
        gpus = []
        for pair in pairs:
            if not (isinstance(pair, list) and len(pair) == 2 and _number(pair[1])):
                return None
            if not isinstance(pair[0], int) or isinstance(pair[0], bool) or pair[0] < 0:
                return None
            gpus.append((pair[0], float(pair[1])))
        return cls(tuple(gpus), float(peak), None if reserved is None else float(reserved), at)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def command_hash(command: str) -> str:
    """The hash of a command template (placeholders unfilled: every seed of a spec shares it)."""
    return hashlib.sha256(command.encode()).hexdigest()[:16]


def estimate(spec: ExperimentSpec, book: VramBook, commit: str | None, probe: bool = False) -> VramEstimate:
    """What placement reserves for ``spec`` (the module docstring's order); ``probe``: the spec
    said ``vram_gb: probe``."""
    mine = command_hash(spec.command)
    same = [m for m in book.measurements if m.command_hash == mine and m.base_id == spec.base_id]
    exact = [m for m in same if m.commit == commit]
    if exact:
        return _measured(exact[-1], f"at {exact[-1].commit[:10]}")
    if spec.vram_gb is not None and not probe:
        over = [m for m in same if m.source.startswith("live") and m.peak_gb > spec.vram_gb]
        if over:  # a run of this command used more than the spec says: reserve what it used
            m = max(over, key=lambda x: x.peak_gb)
            return _measured(m, f"at {m.commit[:10]}, over the spec's {spec.vram_gb:g} GB")
        return VramEstimate(spec.vram_gb, "spec")
    if probe and same:
        return _measured(same[-1], f"at {same[-1].commit[:10]}, an earlier commit")
    alike = [m for m in book.measurements if spec.method and m.method == spec.method and m.dataset == spec.dataset]
    if alike:
        m = alike[-1]
        return VramEstimate(round(m.peak_gb, 2), f"measured for {m.method}/{m.dataset} ({m.exp_id} on {m.target})")
    return VramEstimate(None, "probe needed" if probe else "none")


def _measured(m: Measurement, when: str) -> VramEstimate:
    by = f" by {m.exp_id}'s {m.source}" if m.source.startswith("live") else ""
    return VramEstimate(round(m.peak_gb, 2), f"measured on {m.target} ({m.gpu_model}){by} {when}")


def peak_gb(smi_mb: Iterable[float], torch_mb: float | None) -> float:
    """The peak of a run: the most ``nvidia-smi`` showed for it (the CUDA context included) or
    what the job reported, whichever is larger, in GB."""
    most = max([*smi_mb, torch_mb or 0.0], default=0.0)
    return round(most / MIB_PER_GB, 3)
