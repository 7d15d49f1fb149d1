"""The loop's own metrics: what one pass took and saw, as values, as the JSON document of
``.reconciler/metrics.json`` and as Prometheus text (``.reconciler/metrics.prom``).

Pure: no clock, no file. ``reconciler.passmetrics`` times a pass, builds its ``PassMetrics`` and
writes both files; ``reconcile status --health`` and the dashboard read the JSON back.

The text follows the Prometheus exposition format 0.0.4 (what node_exporter's textfile collector
reads): a ``# HELP`` and a ``# TYPE`` line per metric, then ``name{label="value",…} value`` lines;
in a label value ``\\``, ``"`` and a line break are escaped (``\\\\``, ``\\"``, ``\\n``), in a HELP
text ``\\`` and a line break. No sample carries a timestamp (the collector refuses them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconciler.model.actions import KIND_ORDER
from reconciler.model.status import Status

VERSION = 1
STAGES = ("load", "observe", "plan", "apply", "commit", "pass")
"""``pass`` is the whole pass (from the lock taken to the last write), the others its parts."""
HISTORY = 50
"""Passes whose durations ``metrics.json`` keeps (the newest last)."""
STALE_FACTOR = 3.0
"""Metrics are stale when the last pass ended more than this many poll intervals ago."""
DEFAULT_POLL_INTERVAL = 300.0
"""The interval staleness is judged by when the committed config cannot be read."""


@dataclass(frozen=True)
class ProbeStat:
    """One target's probe in one pass."""

    target: str
    seconds: float
    """Wall time of the probe (its remote command or commands, to the parsed observation)."""
    reachable: bool
    received_bytes: int | None = None
    """The probe command's stdout and stderr (``None``: the runner does not report it)."""
    moved_bytes: int | None = None
    """What the target's transport counted during the probe, both ways (``None``: no counter)."""
    error: str | None = None

    @property
    def sent_bytes(self) -> int | None:
        """The request on stdin (and the probe file when it was installed this pass)."""
        if self.moved_bytes is None or self.received_bytes is None:
            return None
        return max(0, self.moved_bytes - self.received_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "seconds": round(self.seconds, 6),
            "reachable": self.reachable,
            "received_bytes": self.received_bytes,
            "sent_bytes": self.sent_bytes,
            "error": self.error,
        }


@dataclass(frozen=True)
class PassMetrics:
    """One real pass (``reconcile --once`` or a pass of watch mode; never ``reconcile plan``)."""

    project: str
    at: str
    """When the pass ended (ISO 8601 with its offset)."""
    stages: Mapping[str, float]
    """Seconds per stage (``STAGES``)."""
    probes: tuple[ProbeStat, ...] = ()
    experiments: Mapping[str, int] = field(default_factory=dict)
    """Entries by status after the pass."""
    planned: Mapping[str, int] = field(default_factory=dict)
    """The plan's actions by kind (``launch``, ``kill``, ``collect``, …)."""
    done: Mapping[str, int] = field(default_factory=dict)
    """Actions carried out successfully, by kind."""
    failed: Mapping[str, int] = field(default_factory=dict)
    """Actions that failed or were not tried, by kind."""
    commit: str | None = None
    poll_interval: float = DEFAULT_POLL_INTERVAL
    warnings: int = 0
    push_failed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "at": self.at,
            "stages": {k: round(v, 6) for k, v in self.stages.items()},
            "probes": [p.to_dict() for p in self.probes],
            "experiments": dict(self.experiments),
            "planned": dict(self.planned),
            "done": dict(self.done),
            "failed": dict(self.failed),
            "commit": self.commit,
            "committed": self.commit is not None,
            "poll_interval": self.poll_interval,
            "warnings": self.warnings,
            "push_failed": self.push_failed,
        }


def document(metrics: PassMetrics, previous: object = None) -> dict[str, Any]:
    """``metrics.json``: ``{version, last, totals: {passes, commits}, history: [{at, stages,
    committed}…]}`` with this pass added to ``previous`` (the file as it was; anything that is not
    such a document starts the totals and the history afresh)."""
    totals = {"passes": 0, "commits": 0}
    history: list[Any] = []
    if isinstance(previous, Mapping) and previous.get("version") == VERSION:
        old = previous.get("totals")
        if isinstance(old, Mapping):
            totals.update({k: v for k, v in old.items() if k in totals and _count(v)})
        if isinstance(previous.get("history"), list):
            history = [h for h in previous["history"] if isinstance(h, Mapping)]
    totals["passes"] += 1
    totals["commits"] += metrics.commit is not None
    history.append({"at": metrics.at, "stages": metrics.to_dict()["stages"], "committed": metrics.commit is not None})
    return {"version": VERSION, "last": metrics.to_dict(), "totals": totals, "history": history[-HISTORY:]}


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def age_seconds(at: str | None, now: datetime) -> float | None:
    """Seconds from ``at`` (ISO 8601 with an offset) to ``now``; ``None`` when unreadable."""
    if not isinstance(at, str):
        return None
    try:
        moment = datetime.fromisoformat(at)
        return (now - moment).total_seconds()
    except (ValueError, TypeError):  # not ISO, or no offset (naive and aware do not subtract)
        return None


def is_stale(at: str | None, now: datetime, poll_interval: float | None) -> bool:
    """No pass recorded, or the last one ended more than ``STALE_FACTOR`` poll intervals ago."""
    age = age_seconds(at, now)
    interval = poll_interval if poll_interval and poll_interval > 0 else DEFAULT_POLL_INTERVAL
    return age is None or age > STALE_FACTOR * interval


# -- Prometheus text ------------------------------------------------------------------------------

Labels = Mapping[str, str]


@dataclass(frozen=True)
class Family:
    """One metric: its name, type, help and samples."""

    name: str
    type: str
    help: str
    samples: Sequence[tuple[Labels, float]] = ()


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render(families: Iterable[Family]) -> str:
    """The text exposition of ``families`` (those without a sample are left out)."""
    lines: list[str] = []
    for family in families:
        if not family.samples:
            continue
        lines += [f"# HELP {family.name} {escape_help(family.help)}", f"# TYPE {family.name} {family.type}"]
        for labels, value in family.samples:
            text = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
            lines.append(
                f"{family.name}{{{text}}} {format_value(value)}" if text else f"{family.name} {format_value(value)}"
            )
    return "\n".join(lines) + "\n" if lines else ""


def families(metrics: PassMetrics, totals: Mapping[str, int]) -> list[Family]:
    """The metrics of the last pass (gauges) and the running totals (counters)."""
    p = {"project": metrics.project}
    timestamp = datetime.fromisoformat(metrics.at).timestamp()
    kinds = sorted({*KIND_ORDER, *metrics.planned, *metrics.done, *metrics.failed}, key=_kind_order)
    statuses = [*(s.value for s in Status), *sorted(set(metrics.experiments) - {s.value for s in Status})]
    probes = sorted(metrics.probes, key=lambda x: x.target)
    return [
        Family(
            "reconciler_pass_duration_seconds",
            "gauge",
            'Seconds each stage of the last pass took; stage="pass" is the whole pass.',
            [({**p, "stage": s}, float(metrics.stages[s])) for s in _stages(metrics.stages)],
        ),
        Family(
            "reconciler_last_pass_timestamp_seconds",
            "gauge",
            "When the last pass ended, in seconds since the Unix epoch.",
            [(p, timestamp)],
        ),
        Family(
            "reconciler_poll_interval_seconds",
            "gauge",
            "The configured policies.poll_interval (metrics older than 3 of them are stale).",
            [(p, float(metrics.poll_interval))],
        ),
        Family(
            "reconciler_probe_duration_seconds",
            "gauge",
            "Seconds the last probe of each target took.",
            [({**p, "target": x.target}, x.seconds) for x in probes],
        ),
        Family(
            "reconciler_probe_bytes",
            "gauge",
            "Bytes the last probe of each target received (stdout and stderr) and sent (its request).",
            [
                ({**p, "target": x.target, "direction": direction}, n)
                for x in probes
                for direction, n in (("received", x.received_bytes), ("sent", x.sent_bytes))
                if n is not None
            ],
        ),
        Family(
            "reconciler_target_reachable",
            "gauge",
            "1 when the target answered its last probe, 0 when it did not.",
            [({**p, "target": x.target}, int(x.reachable)) for x in probes],
        ),
        Family(
            "reconciler_experiments",
            "gauge",
            "Experiments by status after the last pass.",
            [({**p, "status": s}, metrics.experiments.get(s, 0)) for s in statuses],
        ),
        Family(
            "reconciler_planned_actions",
            "gauge",
            "Actions in the last pass's plan, by kind.",
            [({**p, "kind": k}, metrics.planned.get(k, 0)) for k in kinds],
        ),
        Family(
            "reconciler_actions_done",
            "gauge",
            "Actions the last pass carried out successfully, by kind.",
            [({**p, "kind": k}, metrics.done.get(k, 0)) for k in kinds],
        ),
        Family(
            "reconciler_actions_failed",
            "gauge",
            "Actions of the last pass that failed or were not tried, by kind.",
            [({**p, "kind": k}, metrics.failed.get(k, 0)) for k in kinds],
        ),
        Family(
            "reconciler_pass_committed",
            "gauge",
            "1 when the last pass made a commit, else 0.",
            [(p, int(metrics.commit is not None))],
        ),
        Family("reconciler_pass_warnings", "gauge", "Warnings the last pass logged.", [(p, metrics.warnings)]),
        Family(
            "reconciler_passes_total",
            "counter",
            "Passes recorded in this project's metrics.json.",
            [(p, totals.get("passes", 0))],
        ),
        Family(
            "reconciler_pass_commits_total",
            "counter",
            "Passes that made a commit, recorded in this project's metrics.json.",
            [(p, totals.get("commits", 0))],
        ),
    ]


def render_prometheus(metrics: PassMetrics, totals: Mapping[str, int]) -> str:
    return render(families(metrics, totals))


def _stages(stages: Mapping[str, float]) -> list[str]:
    return [*(s for s in STAGES if s in stages), *sorted(set(stages) - set(STAGES))]


def _kind_order(kind: str) -> tuple[int, str]:
    return (KIND_ORDER.get(kind, len(KIND_ORDER)), kind)
