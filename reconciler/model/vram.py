"""GPU memory as a measured fact (issue 18): ``experiments/vram.json`` and the estimate placement uses.

``reconcile probe-vram`` runs an experiment briefly on a target and records what it used: the peak
of ``nvidia-smi``'s memory for the run's process group, sampled during the run, and the job's own
peak (``torch.cuda.max_memory_allocated``, reported through ``reconciler.runtime``) when it has
one, with the evidence (target, GPU model, commit, command hash, samples). The file is written by
the reconciler only and committed; a commit that touches only it is no change of desired state.

Placement reserves, for an experiment (``estimate``), in this order:

1. a measurement of the same command template at the same commit (``measured``);
2. the spec's ``vram_gb`` (``spec``);
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
        return VramEstimate(spec.vram_gb, "spec")
    if probe and same:
        return _measured(same[-1], f"at {same[-1].commit[:10]}, an earlier commit")
    alike = [m for m in book.measurements if spec.method and m.method == spec.method and m.dataset == spec.dataset]
    if alike:
        m = alike[-1]
        return VramEstimate(round(m.peak_gb, 2), f"measured for {m.method}/{m.dataset} ({m.exp_id} on {m.target})")
    return VramEstimate(None, "probe needed" if probe else "none")


def _measured(m: Measurement, when: str) -> VramEstimate:
    return VramEstimate(round(m.peak_gb, 2), f"measured on {m.target} ({m.gpu_model}) {when}")


def peak_gb(smi_mb: Iterable[float], torch_mb: float | None) -> float:
    """The peak of a run: the most ``nvidia-smi`` showed for it (the CUDA context included) or
    what the job reported, whichever is larger, in GB."""
    most = max([*smi_mb, torch_mb or 0.0], default=0.0)
    return round(most / MIB_PER_GB, 3)
