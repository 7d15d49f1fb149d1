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
        """A new dict of the specs by id (the caller's to change)."""
        return {e.id: e for e in self.experiments}

    def spec(self, exp_id: str) -> ExperimentSpec | None:
        """One experiment's spec, from an index built once per desired state (a pass that
        renders 10,000 notes looks 10,000 up: a dict built per lookup made that quadratic)."""
        index: dict[str, ExperimentSpec] | None = self.__dict__.get("_index")
        if index is None:
            index = self.by_id()
            object.__setattr__(self, "_index", index)  # a cache: no field, not compared
        return index.get(exp_id)
