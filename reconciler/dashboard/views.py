"""Pure builders: a ``Snapshot`` in, the JSON documents of the API (and of the page) out.

No I/O here: ``source`` reads, ``server`` serves. Each builder answers one route (see
``docs/dashboard.md``); ``snapshot_doc`` is all of them at once (for older clients: the page loads
the summary and the documents of the view it shows, and the experiments a page at a time through
``pages``). ``experiment_rows`` is the one builder of the experiments' rows.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any

from reconciler.dashboard.source import Snapshot
from reconciler.export.results import ResultFiles
from reconciler.export.tables import seed_value
from reconciler.model.config import Config
from reconciler.model.metrics import DEFAULT_POLL_INTERVAL, STALE_FACTOR, age_seconds, is_stale
from reconciler.model.status import Status, StatusEntry
from reconciler.model.vram import VramEstimate

STATUS_ORDER = tuple(s.value for s in Status)
DECISION_WORDS = ("retry", "continue", "fail", "cancel")


def jsonable(value: Any) -> Any:
    """Dataclasses, enums, tuples and mappings as plain JSON values; NaN and infinities as null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def summary(s: Snapshot) -> dict[str, Any]:
    counts = Counter(e.status.value for e in s.state.entries)
    recorded = {e.id for e in s.state.entries}
    unrecorded = [x.id for x in s.desired.experiments if x.id not in recorded] if s.desired else []
    counts["pending"] += len(unrecorded)
    return {
        "project": s.project,
        "commit": s.commit,
        "committed_at": s.committed_at,
        "updated": s.state.updated,
        "problems": list(s.problems),
        "counts": {k: counts[k] for k in STATUS_ORDER if counts[k]},
        "total": sum(counts.values()),
        "open_escalations": sum(1 for e in s.state.entries if e.escalation and e.escalation.open),
        "targets": s.desired.config.target_names if s.desired else sorted(s.verdicts),
        "decisions_applied": list(s.state.decisions_applied),
        "stages_approved": list(s.state.stages_approved),
        "archived": _archived(s),
    }


def _archived(s: Snapshot) -> dict[str, Any]:
    """The phases moved to ``dispatch/archive/`` (not in the counts above): how many, by status."""
    counts: Counter[str] = Counter()
    for record in s.state.archived:
        counts.update(dict(record.counts))
    return {
        "phases": len(s.state.archived),
        "experiments": sum(r.experiments for r in s.state.archived),
        "counts": dict(sorted(counts.items())),
    }


def experiment_rows(s: Snapshot) -> list[dict[str, Any]]:
    """One row per experiment x seed: the recorded ones, then desired ones not recorded yet."""
    config = s.desired.config if s.desired else None
    rows = [_row(e, config, s.vram.get(e.id)) for e in s.state.entries]
    recorded = {e.id for e in s.state.entries}
    if s.desired:
        for spec in s.desired.experiments:
            if spec.id not in recorded:
                rows.append(
                    {
                        "id": spec.id,
                        "experiment": spec.base_id,
                        "status": "pending",
                        "recorded": False,
                        "group": spec.group.value,
                        "method": spec.method,
                        "dataset": spec.dataset,
                        "phase": spec.phase,
                        "stage": spec.stage,
                        "seed": spec.seed,
                        "target": None,
                        "attempt": 0,
                        "retry_count": 0,
                        "manual_retries": 0,
                        "max_retries": spec.max_retries,
                        "waiting_reason": "not recorded yet (no pass since it was added)",
                    }
                )
    return sorted(rows, key=lambda r: r["id"])


def _row(e: StatusEntry, config: Config | None, est: VramEstimate | None) -> dict[str, Any]:
    sidecar = dict(e.sidecar)
    progress = sidecar.get("progress")
    return {
        "id": e.id,
        "experiment": e.experiment_id or e.id,
        "status": e.status.value,
        "recorded": True,
        "group": e.group,
        "method": e.method,
        "dataset": e.dataset,
        "phase": e.phase,
        "stage": e.stage,
        "seed": e.seed,
        "target": e.target,
        "host": e.host,
        "gpu": e.gpu,
        "attempt": e.attempt,
        "retry_count": e.retry_count,
        "manual_retries": e.manual_retries,
        "max_retries": e.max_retries,
        "started": e.started,
        "finished": e.finished,
        "failure_class": e.failure_class,
        "waiting_reason": e.waiting_reason,
        "notes": e.notes,
        "escalated": bool(e.escalation and e.escalation.open),
        "progress": progress if isinstance(progress, (int, float)) else None,
        "gpu_memory": _gpu_memory(e, est),
        "wandb_url": wandb_url(e, config),
        "hf_url": hub_url(e),
    }


def _gpu_memory(e: StatusEntry, est: VramEstimate | None) -> dict[str, Any] | None:
    """What placement reserves and where that came from; for a run seen on a GPU, what it used."""
    memory = e.gpu_memory
    if memory is None and est is None:
        return None
    return {
        "estimate_gb": est.gb if est is not None else None,
        "estimate_source": est.source if est is not None else None,
        "used": memory.to_dict() if memory is not None else None,
        "text": memory.describe() if memory is not None else None,
        "over": memory.over if memory is not None else False,
    }


def experiment_detail(
    s: Snapshot,
    exp_id: str,
    rows: Mapping[str, dict[str, Any]] | None = None,
    files: ResultFiles | None = None,
) -> dict[str, Any] | None:
    """One experiment's page; ``rows`` (the rows by id, when the caller keeps them) and ``files``
    (its result file, ``source.result_files``) spare building every row and reading its file."""
    entry = s.state.get(exp_id)
    spec = s.desired.spec(exp_id) if s.desired else None
    if entry is None and spec is None:
        return None
    if rows is None:
        rows = {r["id"]: r for r in experiment_rows(s)}
    files = files if files is not None else ResultFiles(s.results, s.result_problems)
    doc: dict[str, Any] = {"row": rows[exp_id]}
    if spec is not None:
        doc["spec"] = {
            "command": spec.command,
            "source": spec.source,
            "description": spec.description,
            "targets": list(spec.targets),
            "expected_duration_hours": spec.expected_duration_hours,
            "vram_gb": spec.vram_gb,
            "gpus": spec.gpus,
            "state": spec.state.value,
            "metrics": list(spec.metrics),
        }
    if entry is not None:
        doc["attempts"] = [jsonable(a) for a in sorted(entry.attempts, key=lambda a: a.n, reverse=True)]
        doc["conditions"] = [jsonable(c) for c in entry.conditions]
        doc["escalation"] = jsonable(entry.escalation) if entry.escalation else None
        doc["actions"] = decision_actions(entry)
        doc["pending_decision"] = pending_decisions(s).get(exp_id)
        doc["sidecar"] = jsonable(dict(entry.sidecar))
        doc["curves"] = curves(dict(entry.sidecar))
        doc["result"] = result_means(files, exp_id)
        doc["result_problem"] = files.problems.get(exp_id)
        doc["unreachable"] = jsonable(entry.unreachable)
        doc["spec_hash"] = entry.spec_hash
        doc["git_commit"] = entry.git_commit
    return doc


def decision_actions(entry: StatusEntry) -> list[dict[str, Any]]:
    """The decisions an open escalation asks for (the verbs its ``needed`` names; all four when it
    names none), as the buttons show them. Empty when nothing is open."""
    esc = entry.escalation
    if esc is None or not esc.open:
        return []
    words = [w for w in DECISION_WORDS if w in esc.needed] or list(DECISION_WORDS)
    actions: list[dict[str, Any]] = [{"action": w, "exp_id": entry.id, "label": w} for w in words]
    if esc.kind == "stage" or "approve" in esc.needed:
        actions.append({"action": "approve_stage", "stage": entry.stage, "label": f"approve stage {entry.stage}"})
    return actions


def pending_decisions(s: Snapshot) -> dict[str, dict[str, Any]]:
    """Decisions committed but not applied by a pass yet, by experiment (``stage<N>`` for stages)."""
    if s.desired is None:
        return {}
    applied = set(s.state.decisions_applied)
    out: dict[str, dict[str, Any]] = {}
    for d in s.desired.decisions:
        if d.id not in applied:
            key = d.exp if d.exp else f"stage{d.stage}"
            out[key] = {"id": d.id, "action": d.action.value, "by": d.by, "at": d.at, "reason": d.reason}
    return out


def escalations(s: Snapshot) -> list[dict[str, Any]]:
    waiting = pending_decisions(s)
    out: list[dict[str, Any]] = []
    for e in s.state.entries:
        if e.escalation is None or not e.escalation.open:
            continue
        doc = jsonable(e.escalation)
        doc.update(
            exp_id=e.id,
            entry_status=e.status.value,
            target=e.target,
            attempt=e.attempt,
            path=f"progress/escalate_{e.id}.md",
            actions=decision_actions(e),
            pending_decision=waiting.get(e.id),
        )
        out.append(doc)
    return sorted(out, key=lambda d: (str(d["created"]), str(d["exp_id"])))


def targets(s: Snapshot) -> list[dict[str, Any]]:
    """Per target: settings, environment verdict, the last probe's GPUs (when recorded), and the
    runs the status places there."""
    config = s.desired.config if s.desired else None
    names = config.target_names if config else sorted(s.verdicts)
    active = [e for e in s.state.entries if e.status.active or e.status is Status.ON_HOLD]
    out = []
    for name in names:
        target = config.target(name) if config else None
        verdict = s.verdicts.get(name)
        probe = s.probes.get(name)
        runs: list[dict[str, Any]] = [
            {
                "id": e.id,
                "status": e.status.value,
                "gpus": list(e.current.gpus) if e.current else [],
                "host": (e.current.host if e.current else None) or e.host,  # the machine it runs on
            }
            for e in active
            if e.target == name
        ]
        gpus = _gpus(probe, target, runs)
        out.append(
            {
                "name": name,
                "kind": target.kind.value if target else None,
                "host": (target.ssh.host if target and target.ssh else None) or (verdict.host if verdict else None),
                "max_runs": target.max_runs if target else None,
                "blacklist": list(target.gpus.blacklist) if target else [],
                "blacklist_models": list(target.gpus.blacklist_models) if target else [],
                "env": jsonable(verdict) if verdict else None,
                "probe": {k: v for k, v in probe.items() if k != "gpus"} if probe else None,
                "gpus": gpus,
                "runs": sorted(runs, key=lambda r: str(r["id"])),
            }
        )
    return out


def _gpus(probe: Mapping[str, Any] | None, target: Any, runs: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The probe's GPUs with our runs and the blacklist marked; ``None`` when no probe recorded any."""
    if not probe or not isinstance(probe.get("gpus"), list):
        return None
    out = []
    for g in probe["gpus"]:
        if not isinstance(g, Mapping) or not isinstance(g.get("index"), int):
            continue
        index, name = g["index"], str(g.get("name") or "")
        blacklisted = bool(target) and (
            index in target.gpus.blacklist or any(m.lower() in name.lower() for m in target.gpus.blacklist_models)
        )
        out.append(
            {
                "index": index,
                "name": name,
                "memory_total_mb": g.get("memory_total_mb"),
                "memory_used_mb": g.get("memory_used_mb"),
                "utilization_pct": g.get("utilization_pct"),
                "processes": len(g.get("processes") or ()),
                "blacklisted": blacklisted,
                "runs": [r["id"] for r in runs if index in r["gpus"]],
            }
        )
    return out


def tables(s: Snapshot) -> list[dict[str, Any]]:
    """The design tables as ``reconciler.export.tables`` derives them (statuses, mean ± std, best)."""
    return [jsonable(t.to_json()) for t in s.tables]


def result_means(files: ResultFiles, exp_id: str) -> dict[str, float | None] | None:
    """Per metric, the run's value as the tables count it (``seed_value``); ``None`` without a file."""
    rows = files.rows.get(exp_id)
    if rows is None:
        return None
    metrics = dict.fromkeys(r.get("metric", "") for r in rows)
    return {m: seed_value(rows, m) for m in metrics if m}


def curves(sidecar: Mapping[str, Any]) -> dict[str, list[list[float]]]:
    """Learning curves a sidecar carries: ``history`` (a list of ``{step|epoch, <metric>: value}``)
    or the seed's ``step_logs``; ``{metric: [[x, y], ...]}``, empty when there are none."""
    points: dict[str, list[list[float]]] = {}
    history = sidecar.get("history") or sidecar.get("step_logs")
    if not isinstance(history, list):
        return points
    for i, item in enumerate(history):
        if not isinstance(item, Mapping):
            continue
        x = item.get("step", item.get("epoch", i))
        if not _number(x):
            continue
        for key, y in item.items():
            if key not in ("step", "epoch", "time", "timestamp") and _number(y):
                points.setdefault(str(key), []).append([float(x), float(y)])
    return points


def plots(s: Snapshot) -> dict[str, Any]:
    """Bars (one chart per design-table column: a bar per method, mean ± std) and the learning
    curves of every run whose sidecar has them."""
    runs = []
    for e in s.state.entries:
        c = curves(dict(e.sidecar))
        if c:
            runs.append({"id": e.id, "method": e.method, "dataset": e.dataset, "status": e.status.value, "curves": c})
    return {"tables": tables(s), "curves": runs}


def wandb_url(e: StatusEntry, config: Config | None) -> str | None:
    run = e.wandb_run_id or dict(e.sidecar).get("wandb_run_id")
    if not isinstance(run, str) or not run:
        return None
    if run.startswith(("https://", "http://")):
        return run
    if config and config.wandb.project and config.wandb.entity:
        return f"https://wandb.ai/{config.wandb.entity}/{config.wandb.project}/runs/{run}"
    return None


def hub_url(e: StatusEntry) -> str | None:
    url = e.hf_artifact_url or dict(e.sidecar).get("hf_artifact_url")
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def snapshot_doc(s: Snapshot, rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every document at once (``rows``: ``experiment_rows(s)`` when the caller keeps them)."""
    return {
        "summary": summary(s),
        "experiments": experiment_rows(s) if rows is None else rows,
        "tables": tables(s),
        "escalations": escalations(s),
        "targets": targets(s),
        "plots": plots(s),
    }


def health(s: Snapshot, metrics: Mapping[str, Any] | None, now: datetime, problem: str | None = None) -> dict[str, Any]:
    """``/api/health``: the last pass's metrics (``.reconciler/metrics.json``, ``None`` when there is
    none: ``problem`` says why) with ``stale`` (no pass within 3 poll intervals of the committed
    config), ``age_seconds`` and ``stale_after_seconds``."""
    interval = s.desired.config.policies.poll_interval if s.desired else DEFAULT_POLL_INTERVAL
    last = metrics.get("last") if metrics else None
    at = last.get("at") if isinstance(last, Mapping) else None
    doc: dict[str, Any] = dict(metrics) if metrics else {"last": None}
    doc.update(
        stale=is_stale(at, now, interval),
        age_seconds=age_seconds(at, now),
        stale_after_seconds=STALE_FACTOR * interval,
    )
    if problem:
        doc["error"] = problem
    return dict(jsonable(doc))
