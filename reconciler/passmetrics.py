"""The loop's own metrics: time each stage of a pass, count what it saw and did, and write
``.reconciler/metrics.json`` and ``.reconciler/metrics.prom`` after every real pass.

The engine makes one ``Stopwatch`` per pass, marks the end of each stage with ``lap`` and hands
``probes`` to the observer (each target's probe latency and bytes); ``record_pass`` builds the
``PassMetrics`` (``reconciler.model.metrics``) once the pass committed and writes both files
atomically (``reconciler.atomic``: a temporary file on the same filesystem, fsynced, renamed, as
node_exporter's textfile collector asks). Nothing here fails a pass: a write that fails is a
warning. ``reconcile plan`` records nothing. ``read_metrics`` and ``committed_poll_interval`` are
for the readers (``reconcile status --health``, the dashboard).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

from reconciler.atomic import atomic_write_text
from reconciler.errors import ReconcilerError
from reconciler.gitstore.repo import ProjectRepo
from reconciler.load.sources import CONFIG
from reconciler.model.actions import ActionResult
from reconciler.model.config import Config, Policies
from reconciler.model.metrics import PassMetrics, ProbeStat, document, render_prometheus
from reconciler.model.status import StateFile
from reconciler.plan import Plan
from reconciler.plan.context import iso

METRICS_JSON = ".reconciler/metrics.json"
METRICS_PROM = ".reconciler/metrics.prom"
METRICS_BYTES = 4 * 1024 * 1024
"""A metrics.json larger than this is not read (it holds 50 passes: a few tens of kB)."""


class Stopwatch:
    """The stages of one pass, on the monotonic clock: ``lap(stage)`` ends ``stage`` (the time since
    the previous lap, or since the stopwatch was made, is added to it)."""

    def __init__(self) -> None:
        self._start = self._mark = time.perf_counter()
        self.stages: dict[str, float] = {}
        self.probes: dict[str, ProbeStat] = {}
        """Filled by ``reconciler.observe.observer.observe`` (its ``stats``)."""

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = self.stages.get(stage, 0.0) + (now - self._mark)
        self._mark = now

    def total(self) -> float:
        return time.perf_counter() - self._start


class PassOutcome(Protocol):
    """What ``record_pass`` reads of the engine's ``PassResult``."""

    @property
    def plan(self) -> Plan: ...
    @property
    def state(self) -> StateFile: ...
    @property
    def results(self) -> list[ActionResult]: ...
    @property
    def commit(self) -> str | None: ...
    @property
    def warnings(self) -> tuple[str, ...]: ...
    @property
    def push_failed(self) -> bool: ...


def pass_metrics(config: Config, result: PassOutcome, watch: Stopwatch, at: datetime) -> PassMetrics:
    """The metrics of a pass that just ended (``commit`` is the last stage timed)."""
    stages = {**watch.stages, "pass": watch.total()}
    return PassMetrics(
        project=config.project,
        at=iso(at),
        stages=stages,
        probes=tuple(watch.probes[name] for name in sorted(watch.probes)),
        experiments=dict(sorted(Counter(e.status.value for e in result.state.entries).items())),
        planned=_by_kind(a.kind for a in result.plan.actions),
        done=_by_kind(r.action.kind for r in result.results if r.ok),
        failed=_by_kind(r.action.kind for r in result.results if not r.ok),
        commit=result.commit,
        poll_interval=config.policies.poll_interval,
        warnings=len(result.warnings),
        push_failed=result.push_failed,
    )


def _by_kind(kinds: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(kinds).items()))


def write_metrics(project_dir: Path, metrics: PassMetrics) -> None:
    """Both files, each atomically; the history and the totals carry over from the last file."""
    try:
        previous = read_metrics(project_dir)
    except MetricsUnavailable:
        previous = None
    doc = document(metrics, previous)
    atomic_write_text(project_dir / METRICS_JSON, json.dumps(doc, indent=1) + "\n")
    atomic_write_text(project_dir / METRICS_PROM, render_prometheus(metrics, doc["totals"]))


def record_pass(
    project_dir: Path,
    config: Config,
    result: PassOutcome,
    watch: Stopwatch,
    at: datetime,
    log: Callable[[str], None],
) -> None:
    """End the ``commit`` stage and write the pass's metrics; never raises (a warning instead)."""
    watch.lap("commit")
    try:
        write_metrics(project_dir, pass_metrics(config, result, watch, at))
    except Exception as exc:  # the loop's own metrics never fail the pass they describe
        log(f"warning: cannot write the pass metrics ({METRICS_JSON}, {METRICS_PROM}): {exc}")


class MetricsUnavailable(Exception):
    """No readable ``metrics.json``; the message says why."""


def read_metrics(project_dir: Path) -> dict[str, Any]:
    """``metrics.json`` as written by the last pass (``MetricsUnavailable`` when missing or unreadable)."""
    path = project_dir / METRICS_JSON
    try:
        with path.open("rb") as f:
            data = f.read(METRICS_BYTES + 1)
    except FileNotFoundError:
        raise MetricsUnavailable(f"no {METRICS_JSON}: no pass has run here yet (or it ran before metrics)") from None
    except OSError as exc:
        raise MetricsUnavailable(f"cannot read {METRICS_JSON}: {exc}") from exc
    if len(data) > METRICS_BYTES:
        raise MetricsUnavailable(f"{METRICS_JSON} is larger than {METRICS_BYTES} bytes")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise MetricsUnavailable(f"{METRICS_JSON} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("last"), dict):
        raise MetricsUnavailable(f"{METRICS_JSON} holds no last pass")
    return doc


def committed_poll_interval(project_dir: Path) -> float | None:
    """``policies.poll_interval`` of the committed config (HEAD), read without loading the whole
    desired state; ``None`` when it cannot be read (not a project, no commit, invalid YAML)."""
    try:
        with ProjectRepo(project_dir) as repo, repo.tree("HEAD") as tree:
            text = tree.read_text(CONFIG)
        doc = yaml.safe_load(text) if text else None
    except (ReconcilerError, OSError, ValueError, yaml.YAMLError):
        return None
    if not isinstance(doc, dict):
        return None
    policies = doc.get("policies")
    value = (
        policies.get("poll_interval", Policies.poll_interval) if isinstance(policies, dict) else Policies.poll_interval
    )
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None
