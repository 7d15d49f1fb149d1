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


class Pilots:
    """The pilot runs of ``entries``: each done run's id and runtime taken back to a factor-1.0
    platform, by (method, dataset), in the entries' order. Gathered on first use, once for every
    estimate of a pass (the done entries do not change while a pass places its launches)."""

    def __init__(self, entries: Iterable[StatusEntry], config: Config) -> None:
        self._entries, self._config = entries, config
        self._by_kind: dict[tuple[str, str], list[tuple[str, float]]] | None = None

    def runs(self, spec: ExperimentSpec) -> list[tuple[str, float]]:
        """The pilots of ``spec``: the done runs of its method and dataset but its own."""
        if not spec.method:
            return []
        if self._by_kind is None:
            self._by_kind = {}
            for entry in self._entries:
                if entry.status is not Status.DONE:
                    continue
                start, end = parse_iso(entry.started), parse_iso(entry.finished)
                if start is None or end is None or end <= start:
                    continue
                hours = (end - start).total_seconds() / 3600.0 / _factor(self._config, entry.target)
                try:
                    self._by_kind.setdefault((entry.method, entry.dataset), []).append((entry.id, hours))
                except TypeError:  # a seed's method or dataset that is no text: no spec's pilot
                    continue
        try:
            kind = self._by_kind.get((spec.method, spec.dataset), [])
        except TypeError:
            return []
        return [run for run in kind if run[0] != spec.id]


def estimate(
    spec: ExperimentSpec, entries: Iterable[StatusEntry] | Pilots, target: Target, config: Config
) -> tuple[float, str] | None:
    """(hours, basis), or ``None`` when neither the spec nor pilot data says (``entries``: every
    entry, or their ``Pilots`` gathered for many estimates)."""
    if spec.expected_duration_hours is not None:
        return spec.expected_duration_hours, "spec"
    runs = (entries if isinstance(entries, Pilots) else Pilots(entries, config)).runs(spec)
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
