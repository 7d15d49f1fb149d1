"""Early stop (pure): cancel the pending runs of a method that clearly trails the best baseline.

The rule, per pending experiment whose spec has ``early_stop: {metric, threshold_pct,
check_after, direction}`` (each experiment's own config, never "the first entry's"):

- Its cohort is the runs with the same ``phase``, ``dataset`` and ``method`` (the ``method`` field,
  else the base id): the seeds of the method on that dataset, not the whole group.
- ``ours`` = the mean over the cohort's done runs of each run's mean ``metric`` value (runs with no
  value for the metric are ignored). The check applies once ``check_after`` such runs exist.
- The reference is the best *baseline method* on the same phase and dataset: the done runs of
  ``group: baseline`` are averaged per method (over seeds), then the best mean wins (highest, or
  lowest for ``direction: lower``). Not the best single row. At least one baseline run must be done.
- Units: ``threshold_pct`` is in percentage points. With ``scale: fraction`` (the default) metric
  values are fractions (accuracy 0.905 = 90.5 %) and one point is 0.01; with ``scale: percent``
  they are percentages (90.5) and one point is 1. The lead is ``(ours - best)`` in points when
  higher is better, ``(best - ours)`` when lower is better (a loss or an ECE), rounded to
  9 decimals: accuracy 0.85 vs 0.90 leads by -5 pp.
- Rules: ``rule: trails`` (the default) cancels when the method trails by strictly more than the
  threshold (lead < -threshold; exactly at it is not a stop). ``rule: must_beat`` is the seed's:
  cancel unless the method leads by at least the threshold (lead < threshold), so a method level
  with the baseline is stopped.
- Baselines: main, ablation and analysis experiments are compared with the best baseline method. A
  baseline is checked too when its spec has ``early_stop`` (a ``defaults:`` block counts): it is
  compared with the best *other* baseline method, so a lone baseline is never stopped.
- Only pending runs are cancelled (the caller passes the ones it would place); running runs finish,
  and done runs stay done. Each cancelled run gets the reason in its notes and one ``early_stop``
  escalation (one file per experiment, the existing writer).

Results come in as ``results[exp_id][metric]`` = the mean value of that done run's result rows
(the engine reads them from ``experiments/results/<exp_id>.csv``); ``None`` turns early stop off.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from statistics import fmean

from reconciler.model.escalation import Escalation
from reconciler.model.spec import Direction, ExperimentSpec, Group, MetricScale, StopRule
from reconciler.model.status import Status, StatusEntry
from reconciler.plan import outcomes
from reconciler.plan.context import iso

Results = Mapping[str, Mapping[str, float]]
"""exp_id -> metric -> mean value of that run's result rows."""

NEEDED = (
    "nothing if the call is right; to run it anyway, relax or remove `early_stop` in the spec, commit, then retry it"
)


@dataclass(frozen=True)
class Stop:
    """Why one pending experiment is early-stopped."""

    exp_id: str
    reason: str
    evidence: tuple[str, ...]


def _method(entry: StatusEntry) -> str:
    return entry.method or entry.experiment_id or entry.id


def _spec_method(spec: ExperimentSpec) -> str:
    return spec.method or spec.base_id


def _means(done: Iterable[StatusEntry], results: Results, metric: str) -> dict[str, list[tuple[str, float]]]:
    """method -> [(exp_id, run mean)] of the done runs that have a value for ``metric``."""
    out: dict[str, list[tuple[str, float]]] = {}
    for entry in done:
        value = results.get(entry.id, {}).get(metric)
        if value is not None:
            out.setdefault(_method(entry), []).append((entry.id, value))
    return out


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def judge(spec: ExperimentSpec, entries: Iterable[StatusEntry], results: Results) -> Stop | None:
    """The early-stop verdict for ``spec`` (a pending run) given every entry and the results."""
    rule = spec.early_stop
    if rule is None:
        return None
    method = _spec_method(spec)
    same = [e for e in entries if e.status is Status.DONE and e.phase == spec.phase and e.dataset == spec.dataset]
    ours = _means((e for e in same if _method(e) == method), results, rule.metric).get(method, [])
    if not ours or len(ours) < max(rule.check_after, 1):
        return None
    baseline_runs = (e for e in same if e.group == Group.BASELINE.value and _method(e) != method)
    baselines = {m: fmean(v for _, v in runs) for m, runs in _means(baseline_runs, results, rule.metric).items()}
    if not baselines:
        return None
    higher = rule.direction is Direction.HIGHER
    best = sorted(baselines, key=lambda m: (-baselines[m] if higher else baselines[m], m))[0]
    mean = fmean(v for _, v in ours)
    lead = round(rule.points_per_unit * ((mean - baselines[best]) if higher else (baselines[best] - mean)), 9)
    where = f"{method} on {spec.dataset}" if spec.dataset else method
    better = "higher" if higher else "lower"
    scale = "" if rule.scale is MetricScale.FRACTION else f", {rule.scale.value} scale"
    if rule.rule is StopRule.MUST_BEAT:
        if lead >= rule.threshold_pct:
            return None
        verdict = (
            f"beats the best baseline {best} by only {_fmt(lead)} pp on {rule.metric}"
            if lead > 0
            else f"does not beat the best baseline {best} on {rule.metric} ({_fmt(-lead)} pp behind)"
        )
        needs = f"needs a lead of {_fmt(rule.threshold_pct)} pp"
    else:
        if -lead <= rule.threshold_pct:
            return None
        verdict = f"trails the best baseline {best} by {_fmt(-lead)} pp on {rule.metric}"
        needs = f"threshold {_fmt(rule.threshold_pct)} pp"
    reason = (
        f"early stop: {where} {verdict} "
        f"({better} is better; {_fmt(mean)} vs {_fmt(baselines[best])}, {needs}{scale}) "
        f"after {len(ours)} runs"
    )
    evidence = [f"{method}: mean {rule.metric} {_fmt(mean)} over {', '.join(i for i, _ in sorted(ours))}"]
    evidence += [f"baseline {m}: mean {rule.metric} {_fmt(baselines[m])}" for m in sorted(baselines)]
    return Stop(spec.id, reason, tuple(evidence))


def early_stops(
    candidates: Iterable[ExperimentSpec], entries: Iterable[StatusEntry], results: Results
) -> dict[str, Stop]:
    """The verdicts for the pending ``candidates`` that early stop cancels (by exp_id)."""
    known = list(entries)
    out: dict[str, Stop] = {}
    for spec in candidates:
        stop = judge(spec, known, results)
        if stop is not None:
            out[spec.id] = stop
    return out


def stopped(entry: StatusEntry, stop: Stop, now: datetime) -> StatusEntry:
    """The pending ``entry`` cancelled by ``stop``, with its ``early_stop`` escalation."""
    entry = outcomes.cancelled(entry, now, stop.reason)
    escalation = Escalation(
        reason=stop.reason, created=iso(now), needed=NEEDED, kind="early_stop", evidence=stop.evidence
    )
    return dataclasses.replace(entry, escalation=outcomes.escalate(entry, escalation))


def apply_early_stop(
    candidates: list[ExperimentSpec],
    entries: dict[str, StatusEntry],
    results: Results | None,
    now: datetime,
) -> list[ExperimentSpec]:
    """Cancel the early-stopped candidates in ``entries``; returns the candidates left to place."""
    if results is None:
        return candidates
    stops = early_stops(candidates, entries.values(), results)
    for exp_id, stop in stops.items():
        entries[exp_id] = stopped(entries[exp_id], stop, now)
    return [c for c in candidates if c.id not in stops]
