"""The desired state of a project, loaded from one committed revision."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.config import Config
from reconciler.model.decisions import Decision
from reconciler.model.design import Definition, DesignTable
from reconciler.model.spec import ExperimentSpec


@dataclass(frozen=True)
class DesiredState:
    config: Config
    experiments: tuple[ExperimentSpec, ...]
    """Expanded (one per seed), sorted by id."""
    decisions: tuple[Decision, ...] = ()
    designs: tuple[DesignTable, ...] = ()
    definitions: tuple[Definition, ...] = ()
    revision: str | None = None
    """The commit the desired state was read from (``None`` for a working tree)."""

    def by_id(self) -> dict[str, ExperimentSpec]:
        return {e.id: e for e in self.experiments}
