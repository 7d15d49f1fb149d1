"""The stage gates: stage N launches only when every experiment of the earlier stages is done or
cancelled (or stage N was approved); a failed or held one keeps it waiting. An archived phase's
experiments count through its record (``model.archive.StageCount``)."""

from __future__ import annotations

from reconciler.model.spec import DesiredRunState, ExperimentSpec
from reconciler.model.status import Status, StatusEntry
from reconciler.plan.context import Context

_STOPPED = (Status.FAILED, Status.ON_HOLD)
"""An earlier stage with one of these keeps a later stage waiting until it is approved."""
_SETTLED = (Status.DONE, Status.CANCELLED)


class Gates:
    """Stage N launches only when every experiment of the earlier stages is done (or approved)."""

    def __init__(self, entries: dict[str, StatusEntry], ctx: Context, approved: list[int]) -> None:
        self.approved = set(approved)
        self._entries, self._ctx = entries, ctx
        self._by_stage: dict[int, list[StatusEntry]] | None = None
        self._blocked: dict[int, str | None] = {}
        self._holding: dict[int, list[StatusEntry]] = {}

    @property
    def by_stage(self) -> dict[int, list[StatusEntry]]:
        """The experiments of each stage (not cancelled by the spec), built on first use: a pass
        with nothing to place never needs them. Only their ids and statuses are read, which the
        placements never change."""
        if self._by_stage is None:
            self._by_stage = {}
            entries, cancelled = self._entries, DesiredRunState.CANCELLED
            for spec in self._ctx.desired.experiments:
                if spec.state is cancelled:
                    continue
                self._by_stage.setdefault(spec.stage, []).append(entries[spec.id])
        return self._by_stage

    def blocked(self, spec: ExperimentSpec) -> str | None:
        """Why stage ``spec.stage`` may not launch (computed once per stage: the statuses it
        reads do not change while the candidates are placed)."""
        if spec.stage not in self._blocked:
            self._blocked[spec.stage] = self._why_blocked(spec)
        return self._blocked[spec.stage]

    def _why_blocked(self, spec: ExperimentSpec) -> str | None:
        if spec.stage in self.approved:
            return None
        archived: dict[int, list[int]] = {}  # the archived phases' experiments count too
        for record in self._ctx.recorded.archived:
            for count in record.stages:
                add = archived.setdefault(count.stage, [0, 0, 0])
                add[0], add[1], add[2] = add[0] + count.members, add[1] + count.settled, add[2] + count.stopped
        for stage in sorted(s for s in {*self.by_stage, *archived} if s < spec.stage):
            members = self.by_stage.get(stage, [])
            total, settled, stopped = archived.get(stage, (0, 0, 0))
            failed = stopped + sum(1 for e in members if e.status in _STOPPED)
            if failed:
                return f"stage {stage} has {failed} failed or held experiment(s); approve stage {spec.stage} to go on"
            done = settled + sum(1 for e in members if e.status in _SETTLED)
            if done < len(members) + total:
                return f"waiting for stage {stage} ({done} of {len(members) + total} done)"
        return None

    def holding(self, spec: ExperimentSpec) -> list[StatusEntry]:
        """The failed or held experiments of earlier stages that keep ``spec`` waiting (listed
        for the first waiting spec of a stage only: their escalations are noted once)."""
        if spec.stage in self.approved or spec.stage in self._holding:
            return []
        self._holding[spec.stage] = [
            e
            for stage in sorted(s for s in self.by_stage if s < spec.stage)
            for e in self.by_stage[stage]
            if e.status in _STOPPED
        ]
        return self._holding[spec.stage]
