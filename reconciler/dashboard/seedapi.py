"""The seed dashboard's read routes, answered from our snapshot (pure builders).

A lab moving over keeps its scripts and the seed's page (``skills/dashboard/``) pointed at
``reconcile dashboard``; these builders give them the shapes they read (the seed's
``server.py`` routes). One server serves one project, so a
route naming another project answers as the seed does for an unknown one. Everything comes from
the committed snapshot, like the rest of the API; nothing here writes.

    /api/projects                      [{name, types: ["dispatch"], mtime}]
    /api/gpus                          each target's GPUs from its last probe (seed units)
    /api/dispatch                      [the state document, project filled in]
    /api/exp-table/<p>[/<pilot|full>]  the design table, each cell with the seed's fields
    /api/research/<p>                  {runs, summary}: the 13 run keys the seed's page reads
    /api/steps/<p>/<id>                {steps}: the run's per-step metrics from its sidecar
    /api/logfile/<p>/<id>              {found, content}: experiments/logs/<id>.md (read by the server)

Where the seed had bugs (seed-system.md section 10), these fix them: a cell's mean and std are over
its *done* seeds only (the seed counted failed seeds' values), every status keeps its name (the
seed ranked unknown statuses as 0 and showed "—"), and a baseline's numbers come from its own
results (the seed's fallback read only ``group == "main"`` rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from reconciler.dashboard.source import Snapshot
from reconciler.dashboard.views import hub_url, jsonable, wandb_url
from reconciler.export.tables import CellView, TableView
from reconciler.model.design import DesignTable
from reconciler.model.status import Status, StatusEntry

KINDS = ("pilot", "full")
RUN_ORDER = {"running": 0, "done": 1, "pending": 2}
STD_DIGITS = 4


def projects(s: Snapshot) -> list[dict[str, Any]]:
    mtime = _epoch(s.committed_at)
    return [{"name": s.project, "types": ["dispatch"], "mtime": mtime}]


def gpus(s: Snapshot) -> list[dict[str, Any]]:
    """``/api/gpus``: each target's GPUs as its last probe saw them (the seed asked ``gnvitop``),
    in the seed's units (memory in MiB, utilisation in percent). ``host`` is the target's name, as
    the runs' ``host`` is; a GPU is ``available`` when no run of ours holds it and the target's
    blacklist does not name it."""
    config = s.desired.config if s.desired else None
    held = {
        (e.target, g)
        for e in s.state.entries
        if (e.status.active or e.status is Status.ON_HOLD) and e.current is not None
        for g in e.current.gpus
    }
    out = []
    for name in sorted(s.probes):
        probe = s.probes[name]
        listed = probe.get("gpus")
        if not isinstance(listed, list):
            continue
        target = config.target(name) if config is not None and name in config.target_names else None
        cards = []
        for g in listed:
            if not isinstance(g, Mapping) or not isinstance(g.get("index"), int):
                continue
            index, model = g["index"], str(g.get("name") or "")
            blacklisted = target is not None and (
                index in target.gpus.blacklist or any(m.lower() in model.lower() for m in target.gpus.blacklist_models)
            )
            cards.append(
                {
                    "index": index,
                    "name": model,
                    "utilization": g.get("utilization_pct"),
                    "memory_used": g.get("memory_used_mb"),
                    "memory_total": g.get("memory_total_mb"),
                    "temperature": None,
                    "available": not blacklisted and (name, index) not in held,
                }
            )
        doc: dict[str, Any] = {"host": name, "reachable": bool(probe.get("reachable")), "gpus": cards}
        doc["_source"] = "reconciler probe"
        doc["observed_at"] = probe.get("observed_at")
        out.append(doc)
    return out or [{"error": "no GPU probe recorded yet: nvidia-smi not found on any target, or no pass has run"}]


def dispatch(s: Snapshot) -> list[dict[str, Any]]:
    doc = s.state.to_dict()
    doc["project"] = s.project
    return [doc]


def exp_table(s: Snapshot, kind: str) -> dict[str, Any]:
    """``/api/exp-table/<p>/<kind>``: the ``<kind>_design`` table with its cells filled in."""
    table = next((t for t in s.tables if t.name == f"{kind}_design"), None)
    if table is None:
        return {"found": False, "type": kind, "rows": [], "cols": [], "cells": []}
    entries = s.state.by_id()
    design = _design(s, table.name)
    doc: dict[str, Any] = {
        "found": True,
        "type": kind,
        "title": table.title,
        "caption": table.caption,
        "description": design.description if design is not None else "",
        "phase": table.phase,
        "rows": [{"id": r.id, "label": r.label, "group": r.group, "note": r.note} for r in table.rows],
        "cols": [{"id": c.id, "label": c.label, "metric": c.metric} for c in table.cols],
        "cells": [_cell(table, cell, entries) for _, cell in sorted(table.cells.items())],
    }
    return doc


def _design(s: Snapshot, name: str) -> DesignTable | None:
    if s.desired is None:
        return None
    return next((d for d in s.desired.designs if d.name == name), None)


def _cell(table: TableView, cell: CellView, entries: Mapping[str, StatusEntry]) -> dict[str, Any]:
    members = [entries[i] for i in cell.exp_ids if i in entries]
    metric = next((c.metric for c in table.cols if c.id == cell.col), "")
    out: dict[str, Any] = {
        "exp_id": cell.design_id,
        "row": cell.row,
        "col": cell.col,
        "purpose": cell.purpose,
        "status": "todo" if cell.status == "missing" else cell.status,
    }
    results: dict[str, float] = {}
    if cell.mean is not None and metric:
        results[metric] = round(cell.mean, STD_DIGITS)
        if cell.std is not None and cell.seeds_done >= 2:
            results[f"{metric}_std"] = round(cell.std, STD_DIGITS)
    if results:
        out["results"] = results
    if len(members) > 1:
        out["seed_count"] = len(members)
    done = [e for e in members if e.status is Status.DONE]
    first = done[0] if done else (members[0] if members else None)
    if first is not None:
        out.update(_links(first))
        out["host"] = first.host or ""
        out["started"] = first.started or ""
        out["notes"] = first.notes
        out["retry_count"] = first.retry_count
        finished = [e.finished for e in done if e.finished]
        out["finished"] = max(finished) if finished else ""
    return out


def _links(e: StatusEntry) -> dict[str, str]:
    links = {}
    wandb = wandb_url(e, None)
    if wandb:
        links["wandb_url"] = wandb
    hub = hub_url(e)
    if hub:
        links["hf_artifact_url"] = hub
    return links


def research(s: Snapshot) -> dict[str, Any]:
    """``/api/research/<p>``: ``runs`` (the 13 keys of the seed's run records) and ``summary``."""
    runs = [_run(s, e) for e in s.state.entries]
    runs.sort(key=lambda r: str(r["finished"]), reverse=True)  # done runs: newest first (the others have "")
    runs.sort(key=lambda r: RUN_ORDER.get(r["status"], len(RUN_ORDER)))  # stable: running, done, pending, the rest
    summary = {k: sum(1 for r in runs if r["status"] == k) for k in ("running", "done", "pending")}
    summary["offline_queue"] = 0
    return {"runs": runs, "summary": summary}


def _run(s: Snapshot, e: StatusEntry) -> dict[str, Any]:
    sidecar = dict(e.sidecar)
    history = sidecar.get("history") or sidecar.get("step_logs")
    latest = history[-1] if isinstance(history, list) and history and isinstance(history[-1], Mapping) else {}
    config = {
        k: v
        for k, v in e.to_dict().items()
        if isinstance(v, (str, int, float, bool))
        and k not in ("id", "status", "description", "notes", "pid", "host", "gpu", "started", "finished")
    }
    links = _links(e)
    return {
        "exp_id": e.id,
        "status": e.status.value,
        "host": e.host or "",
        "gpu": "" if e.gpu is None else e.gpu,
        "pid": e.pid,
        "config": config,
        "metrics": dict(e.results),
        "wandb_url": links.get("wandb_url", ""),
        "hf_artifact_url": links.get("hf_artifact_url", ""),
        "description": (e.description or _spec_description(s, e.id))[:300],
        "started": e.started or "",
        "finished": e.finished or "" if e.status is Status.DONE else "",
        "latest_step": jsonable(dict(latest)),
    }


def _spec_description(s: Snapshot, exp_id: str) -> str:
    spec = s.desired.spec(exp_id) if s.desired else None
    return spec.description if spec is not None else ""


def steps(s: Snapshot, exp_id: str) -> dict[str, Any]:
    """``/api/steps/<p>/<id>``: the per-step records of the run's sidecar (``history``, or the
    seed's ``step_logs``), else none."""
    entry = s.state.get(exp_id)
    if entry is None:
        return {"steps": []}
    sidecar = dict(entry.sidecar)
    history = sidecar.get("history") or sidecar.get("step_logs")
    if not isinstance(history, list):
        return {"steps": []}
    return {"steps": [jsonable(dict(item)) for item in history if isinstance(item, Mapping)]}


def _epoch(iso_time: str) -> float:
    try:
        return datetime.fromisoformat(iso_time).timestamp()
    except ValueError:
        return 0.0
