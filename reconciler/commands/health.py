"""``reconcile status --health``: the loop's own metrics, from ``.reconciler/metrics.json``.

Exit 0 when the last pass ended within ``STALE_FACTOR`` (3) poll intervals (``policies.poll_interval``
of the committed config, read on its own; 5 minutes when it cannot be read), 1 when no metrics
are recorded or they are stale (said on stderr). ``as_json`` prints the file's document as JSON,
with ``stale`` added (as the dashboard's ``/api/health``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from reconciler.commands.common import EXIT_OK, EXIT_STALLED
from reconciler.commands.display import say
from reconciler.model.metrics import DEFAULT_POLL_INTERVAL, STAGES, STALE_FACTOR, age_seconds, is_stale
from reconciler.passmetrics import METRICS_JSON, MetricsUnavailable, committed_poll_interval, read_metrics


def show_health(project_dir: Path, as_json: bool) -> int:
    """Print the last pass's metrics (a short view, or the JSON document); 0 when fresh, 1 when
    missing or stale."""
    try:
        doc = read_metrics(project_dir)
    except MetricsUnavailable as exc:
        if as_json:
            click.echo(json.dumps({"last": None, "stale": True, "error": str(exc)}, indent=2))
        say(f"health: {exc}", err=True)
        return EXIT_STALLED
    interval = committed_poll_interval(project_dir) or DEFAULT_POLL_INTERVAL
    last: Mapping[str, Any] = doc["last"]
    now = datetime.now(timezone.utc)
    stale = is_stale(last.get("at"), now, interval)
    if as_json:
        click.echo(json.dumps({**doc, "stale": stale}, indent=2))
    else:
        for line in _lines(doc, age_seconds(last.get("at"), now), interval, stale):
            say(line)
    if stale:
        say(
            f"health: stale: the last pass recorded in {METRICS_JSON} ended more than {STALE_FACTOR:g} poll "
            f"intervals ({STALE_FACTOR * interval:g} s) ago: is `reconcile` (watch mode or cron) running?",
            err=True,
        )
        return EXIT_STALLED
    return EXIT_OK


def _lines(doc: Mapping[str, Any], age: float | None, interval: float, stale: bool) -> list[str]:
    last = doc["last"]
    when = f"{last.get('at')} ({_age(age)}; poll interval {interval:g} s)"
    stages = _mapping(last.get("stages"))
    names = [s for s in STAGES if s in stages] + sorted(set(stages) - set(STAGES))
    commit = last.get("commit")
    totals = _mapping(doc.get("totals"))
    lines = [
        f"last pass: {when}: {'STALE' if stale else 'ok'}",
        "stages:    " + (", ".join(f"{s} {_seconds(stages[s])}" for s in names) or "none recorded"),
        f"commit:    {str(commit)[:10] if commit else 'none'}"
        + (f" (passes {totals.get('passes')}, commits {totals.get('commits')})" if totals else ""),
        "experiments: " + _counts(last.get("experiments")),
        "planned:   " + _counts(last.get("planned")),
        "done:      " + _counts(last.get("done")),
    ]
    if _mapping(last.get("failed")):
        lines.append("failed:    " + _counts(last.get("failed")))
    probes = [p for p in last.get("probes") or () if isinstance(p, Mapping)]
    lines.append("targets:" + ("" if probes else " none probed"))
    width = max((len(str(p.get("target"))) for p in probes), default=0)
    for p in probes:
        state = "reachable" if p.get("reachable") else "UNREACHABLE"
        line = (
            f"  {p.get('target')!s:<{width}}  {state:<11}  probe {_seconds(p.get('seconds'))}"
            f"  received {_bytes(p.get('received_bytes'))}  sent {_bytes(p.get('sent_bytes'))}"
        )
        lines.append(line + (f"  ({p.get('error')})" if p.get("error") else ""))
    return lines


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _counts(value: object) -> str:
    counts = _mapping(value)
    return ", ".join(f"{k} {n}" for k, n in counts.items()) or "none"


def _seconds(value: object) -> str:
    return f"{value:.3f} s" if isinstance(value, (int, float)) else "?"


def _bytes(value: object) -> str:
    if not isinstance(value, int):
        return "?"
    return f"{value} B" if value < 1024 else f"{value / 1024:.1f} KiB"


def _age(age: float | None) -> str:
    if age is None:
        return "age unknown"
    if age < 0:
        return f"{-age:.0f} s in the future: is this clock behind?"
    if age < 120:
        return f"{age:.0f} s ago"
    if age < 7200:
        return f"{age / 60:.0f} min ago"
    return f"{age / 3600:.1f} h ago"
