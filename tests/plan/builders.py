"""Build model values from the compact YAML of the golden planner cases (test side only)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from reconciler.model.config import (
    BackoffPolicy,
    Config,
    GpuPolicy,
    HubSettings,
    Policies,
    Target,
    TargetKind,
    TimeoutPolicy,
    UnreachablePolicy,
    WandbSettings,
)
from reconciler.model.decisions import Decision, DecisionAction
from reconciler.model.desired import DesiredState
from reconciler.model.env import EnvVerdict, env_hash
from reconciler.model.ids import launch_token
from reconciler.model.leases import Lease
from reconciler.model.observed import GpuObservation, LaunchRecord, ObservedState, RunObservation, TargetObservation
from reconciler.model.spec import DesiredRunState, Direction, EarlyStop, ExperimentSpec, Group, RemediationRule
from reconciler.model.status import StateFile
from reconciler.model.vram import VramBook


def config(d: dict[str, Any]) -> Config:
    targets = []
    for t in d.get("targets", []):
        t = dict(t)
        t["kind"] = TargetKind(t.get("kind", "local"))
        if "gpus" in t:
            g = dict(t["gpus"])
            g["blacklist"] = tuple(g.get("blacklist", ()))
            g["blacklist_models"] = tuple(g.get("blacklist_models", ("RTX A6000",)))
            t["gpus"] = GpuPolicy(**g)
        targets.append(Target(**t))
    p = dict(d.get("policies", {}))
    if "backoff" in p:
        p["backoff"] = BackoffPolicy(**p["backoff"])
    if "unreachable" in p:
        p["unreachable"] = UnreachablePolicy(**p["unreachable"])
    if "timeouts" in p:
        p["timeouts"] = TimeoutPolicy(**p["timeouts"])
    return Config(
        project=d.get("project", "proj"),
        targets=tuple(targets),
        policies=Policies(**p),
        wandb=WandbSettings(**d.get("wandb", {})),
        hub=HubSettings(**d.get("hub", {})),
    )


def spec(d: dict[str, Any]) -> ExperimentSpec:
    d = dict(d)
    d.setdefault("base_id", d["id"])
    d.setdefault("source", "dispatch/x.yaml:1")
    d.setdefault("command", f"python3 train.py --seed {{seed}} --out {{result_file}} --exp {d['id']}")
    if "group" in d:
        d["group"] = Group(d["group"])
    if "state" in d:
        d["state"] = DesiredRunState(d["state"])
    if "targets" in d:
        d["targets"] = tuple(d["targets"])
    if "env" in d:
        d["env"] = tuple((str(k), str(v)) for k, v in d["env"])
    if "remediation" in d:
        d["remediation"] = tuple(RemediationRule(**r) for r in d["remediation"])
    if "early_stop" in d:
        d["early_stop"] = EarlyStop(
            **{**d["early_stop"], "direction": Direction(d["early_stop"].get("direction", "higher"))}
        )
    return ExperimentSpec(**d)


def desired(case: dict[str, Any]) -> DesiredState:
    decisions = tuple(Decision(**{**x, "action": DecisionAction(x["action"])}) for x in case.get("decisions", []))
    return DesiredState(
        config=config(case.get("config", {})),
        experiments=tuple(sorted((spec(e) for e in case.get("experiments", [])), key=lambda s: s.id)),
        decisions=decisions,
        revision=case.get("revision", "c0ffee0000000000000000000000000000000000"),
    )


def recorded(case: dict[str, Any], project: str) -> StateFile:
    d = case.get("recorded") or {"project": project, "experiments": []}
    d.setdefault("project", project)
    return StateFile.from_dict(d)


def observed(case: dict[str, Any], project: str) -> ObservedState:
    out: dict[str, TargetObservation] = {}
    for name, t in (case.get("observed") or {}).items():
        runs = {}
        for r in t.get("runs", []):
            r = dict(r)
            r.setdefault("token", launch_token(project, r["exp_id"], r["attempt"]))
            r["log_tail"] = tuple(r.get("log_tail", ()))
            if "group" in r:
                r["group"] = tuple(r["group"])
            if "launch" in r:
                r["launch"] = LaunchRecord(**{**r["launch"], "gpus": tuple(r["launch"].get("gpus", ()))})
            run = RunObservation(**r)
            runs[(run.exp_id, run.attempt)] = run
        gpus = None
        if "gpus" in t:
            gpus = tuple(
                GpuObservation(
                    **{
                        "uuid": f"GPU-{g['index']}",
                        "utilization_pct": 0.0,
                        **g,
                        "processes": tuple((int(pid), mb) for pid, mb in g.get("processes", ())),
                    }
                )
                for g in t["gpus"]
            )
        out[name] = TargetObservation(
            target=name,
            reachable=t.get("reachable", True),
            error=t.get("error"),
            runs=runs,
            gpus=gpus,
            host=t.get("host", name),
            root=t.get("root", f"/r/{name}"),
            free_disk_gb=t.get("free_disk_gb"),
            gpu_groups={int(pid): int(pgid) for pid, pgid in (t.get("gpu_groups") or {}).items()},
            leases=tuple(Lease(**{**x, "gpus": tuple(x["gpus"])}) for x in t.get("leases", ())),
        )
    return ObservedState(out)


def now(case: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(case.get("now", "2026-11-26T12:00:00+00:00")))


def env(case: dict[str, Any], desired_state: DesiredState) -> dict[str, EnvVerdict]:
    """Verdicts per target; ``fresh: true`` makes one match the case's commit and env settings."""
    out: dict[str, EnvVerdict] = {}
    for name, v in (case.get("env") or {}).items():
        target = desired_state.config.target(name)
        out[name] = EnvVerdict(
            target=name,
            status=v["status"],
            checked_commit=v.get("commit", desired_state.revision or ""),
            checked_at=v.get("checked_at", str(case.get("now", "2026-11-26T12:00:00+00:00"))),
            env_hash=v.get("env_hash", env_hash(target)),
            evidence=tuple(v.get("evidence", ())),
        )
    return out


def results(case: dict[str, Any]) -> dict[str, dict[str, float]] | None:
    """``results: {exp_id: {metric: mean value}}`` of the done runs; absent means no early stop."""
    raw = case.get("results")
    if raw is None:
        return None
    return {str(k): {str(m): float(v) for m, v in (vals or {}).items()} for k, vals in raw.items()}


def vram(case: dict[str, Any]) -> VramBook | None:
    """``vram: [measurement, ...]`` (``experiments/vram.json``'s records); absent means none."""
    raw = case.get("vram")
    if raw is None:
        return None
    return VramBook.loads(json.dumps({"version": 1, "measurements": raw}))
