"""Build ``config/reconciler.yaml`` from the seed's settings and the hosts its entries ran on.

One target per distinct ``host`` of ``dispatch/state.json``: a host whose name contains ``gadi``
becomes a ``pbs`` target (reached through the ``gadi`` login alias, root on the scratch base from
``gadi_scratch_base``); every other host (the lab's ``xuchang-lab*`` servers, ``c500``) becomes an
``ssh`` target whose ``host:`` is the seed's alias. With no host at all, one ``local`` target.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.scaffold import project_name

WANDB_MODES = ("online", "offline", "disabled")
NO_HUB = ("__wandb_only__", "__per_machine__")
_NCI_SCRATCH = re.compile(r"^/scratch/(?P<project>[A-Za-z0-9_]+)(?:/|$)")


def target_names(hosts: Iterable[str]) -> dict[str, str]:
    """Seed host -> a unique target name that follows the id pattern."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for host in sorted(set(hosts)):
        base = project_name(host)
        name, n = base, 2
        while name in used:
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        names[host] = name
    return names


def _target(host: str, project: str, settings: Mapping[str, str]) -> dict[str, Any]:
    if "gadi" in host.lower():
        base = settings.get("gadi_scratch_base", "").rstrip("/")
        target: dict[str, Any] = {"kind": "pbs", "host": host}
        target["root"] = f"{base}/{project}" if base.startswith("/") else f"reconciler/{project}"
        batch: dict[str, Any] = {"queue": "gpuvolta"}
        nci = _NCI_SCRATCH.match(base)
        if nci:
            batch["account"] = nci["project"]
            batch["storage"] = f"scratch/{nci['project']}"
        target["batch"] = batch
        return target
    return {"kind": "ssh", "host": host, "root": f"reconciler/{project}"}


def build_config(
    project: str, settings: Mapping[str, str], hosts: Iterable[str], local_name: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """The config document, and the map seed host -> target name."""
    names = target_names(hosts)
    targets: dict[str, dict[str, Any]] = {}
    for host, name in names.items():
        targets[name] = _target(host, project, settings)
    if not targets:
        targets[local_name] = {"kind": "local", "root": ".reconciler/runs-local", "python": "python3"}
    conda = settings.get("conda_env")
    if conda:
        for target in targets.values():
            target["env"] = {"conda": conda}
    doc: dict[str, Any] = {"version": 1, "project": project, "targets": targets}
    wandb = {k: settings[f"wandb_{k}"] for k in ("project", "entity") if settings.get(f"wandb_{k}")}
    if settings.get("wandb_mode", "").lower() in WANDB_MODES:
        wandb["mode"] = settings["wandb_mode"].lower()
    if wandb:
        doc["wandb"] = wandb
    repo = settings.get("hf_artifact_repo")
    if repo and settings.get("artifact_base") not in NO_HUB:
        doc["huggingface"] = {"repo": repo}
    return doc, names
