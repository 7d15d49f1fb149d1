"""Duration estimates for experiments whose spec gives no ``expected_duration_hours``.

The seed's rule, from pilot data: ``max(pilot_hours x platform_factor x 1.2, 0.5)``. The pilot
runs are the done experiments of the same method and dataset; their measured runtime is taken
back to a factor-1.0 platform (divided by their target's factor) and then scaled to the target
chosen now. The basis is recorded beside the figure, so a reader sees where it came from.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable

from reconciler.model.config import Config, Target
from reconciler.model.spec import ExperimentSpec
from reconciler.model.status import Status, StatusEntry
from reconciler.plan.context import parse_iso

BUFFER = 1.2
FLOOR_HOURS = 0.5


def estimate(
    spec: ExperimentSpec, entries: Iterable[StatusEntry], target: Target, config: Config
) -> tuple[float, str] | None:
    """(hours, basis), or ``None`` when neither the spec nor pilot data says."""
    if spec.expected_duration_hours is not None:
        return spec.expected_duration_hours, "spec"
    runs: list[tuple[str, float]] = []
    for entry in entries:
        if entry.id == spec.id or entry.status is not Status.DONE:
            continue
        if (entry.method, entry.dataset) != (spec.method, spec.dataset) or not spec.method:
            continue
        start, end = parse_iso(entry.started), parse_iso(entry.finished)
        if start is None or end is None or end <= start:
            continue
        factor = _factor(config, entry.target)
        runs.append((entry.id, (end - start).total_seconds() / 3600.0 / factor))
    if not runs:
        return None
    base = statistics.median(h for _, h in runs)
    hours = max(base * target.platform_factor * BUFFER, FLOOR_HOURS)
    names = ", ".join(sorted(i for i, _ in runs)[:3]) + (" …" if len(runs) > 3 else "")
    basis = (
        f"pilot {names}: median {base * 60:.1f} min x platform {target.platform_factor:g} ({target.name})"
        f" x {BUFFER:g}, floor {FLOOR_HOURS:g} h"
    )
    return round(hours, 4), basis


def _factor(config: Config, target: str | None) -> float:
    if target and target in config.target_names:
        return config.target(target).platform_factor or 1.0
    return 1.0
