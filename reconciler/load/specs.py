"""Build ``ExperimentSpec`` values from schema-checked ``dispatch/*.yaml`` files.

Runs after the schema check. ``defaults:`` are applied first (a key set in an experiment replaces
the default's whole value), then seeds expand: ``id`` with ``seeds: [0, 1]`` becomes ``id_s0`` and
``id_s1``. Each spec keeps where it came from (``LocatedSpec``), so that the cross-file checks can
name the file, line and field of whatever they find wrong. Entries with schema errors are skipped
(their errors are already reported); the clean ones are still built and checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.errors import Problem
from reconciler.load.config import remediation_rules, text_pairs
from reconciler.load.document import Document, JsonPath
from reconciler.load.schema_check import Checked
from reconciler.model.ids import DEFAULT_RESULT_FILE
from reconciler.model.spec import (
    DesiredRunState,
    Direction,
    EarlyStop,
    ExperimentSpec,
    Group,
    MetricScale,
    StopRule,
)


@dataclass(frozen=True)
class LocatedSpec:
    """One expanded spec and the place in its dispatch file each of its values came from."""

    spec: ExperimentSpec
    doc: Document
    index: int
    """Position of the entry in ``experiments:``."""
    default_keys: frozenset[str]
    """Keys the entry took from ``defaults:`` (the others it sets itself, or are built in)."""
    seed_index: int | None = None

    def path(self, key: str) -> JsonPath:
        """Where ``key``'s value was written: in ``defaults:``, else in the entry (or would be)."""
        if key in self.default_keys:
            return ("defaults", key)
        return ("experiments", self.index, key)

    @property
    def id_path(self) -> JsonPath:
        """Where the expanded id comes from: the seed that made it, else the entry's ``id``."""
        if self.seed_index is None:
            return self.path("id")
        return (*self.path("seeds"), self.seed_index)

    def where(self) -> str:
        return self.doc.where(self.id_path)


def _early_stop(d: Mapping[str, Any] | None) -> EarlyStop | None:
    if d is None:
        return None
    return EarlyStop(
        metric=d["metric"],
        threshold_pct=float(d.get("threshold_pct", 0.5)),
        check_after=int(d.get("check_after", 1)),
        direction=Direction(d.get("direction", "higher")),
        rule=StopRule(d.get("rule", StopRule.TRAILS.value)),
        scale=MetricScale(d.get("scale", MetricScale.FRACTION.value)),
    )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def build_spec(merged: Mapping[str, Any], exp_id: str, seed: int | None, source: str) -> ExperimentSpec:
    """One expanded spec from an entry with its defaults applied (schema-valid values)."""
    return ExperimentSpec(
        id=exp_id,
        base_id=merged["id"],
        command=merged["command"],
        source=source,
        seed=seed,
        group=Group(merged.get("group", "main")),
        method=merged.get("method", ""),
        dataset=merged.get("dataset", ""),
        phase=merged.get("phase", ""),
        stage=merged.get("stage", 1),
        priority=merged.get("priority", 100),
        expected_duration_hours=_number(merged.get("expected_duration_hours")),
        vram_gb=None if merged.get("vram_gb") == "probe" else _number(merged.get("vram_gb")),
        vram_probe=merged.get("vram_gb") == "probe",
        gpus=merged.get("gpus"),
        targets=tuple(merged.get("targets") or ()),
        result_file=merged.get("result_file", DEFAULT_RESULT_FILE),
        max_retries=merged.get("max_retries"),
        remediation=remediation_rules(merged.get("remediation") or {}),
        early_stop=_early_stop(merged.get("early_stop")),
        state=DesiredRunState(merged.get("state", "active")),
        env=text_pairs(merged.get("env")),
        metrics=tuple(merged.get("metrics") or ()),
        description=merged.get("description", ""),
        on_change=merged.get("on_change"),
    )


def build_specs(checked: Checked) -> tuple[list[LocatedSpec], list[Problem]]:
    """Every clean entry of one dispatch file, expanded; problems for entries without a command."""
    doc = checked.doc
    data = doc.data
    out: list[LocatedSpec] = []
    problems: list[Problem] = []
    if not isinstance(data, dict) or not checked.clean(("defaults",)):
        return out, problems
    defaults = data.get("defaults") or {}
    items = data.get("experiments")
    for i, item in enumerate(items if isinstance(items, list) else []):
        if not checked.clean(("experiments", i)):
            continue
        merged = {**defaults, **item}
        if "command" not in merged:
            problems.append(
                doc.problem(("experiments", i, "command"), "missing required key 'command' (here or in defaults)")
            )
            continue
        line, _ = doc.locate(("experiments", i))
        source = f"{doc.file}:{line}"
        from_defaults = frozenset(k for k in defaults if k not in item)
        seeds = merged.get("seeds")
        if seeds is None:
            spec = build_spec(merged, merged["id"], None, source)
            out.append(LocatedSpec(spec, doc, i, from_defaults))
            continue
        for j, seed in enumerate(seeds):
            spec = build_spec(merged, f"{merged['id']}_s{seed}", seed, source)
            out.append(LocatedSpec(spec, doc, i, from_defaults, j))
    return out, problems
