"""Build ``config/reconciler.yaml``'s targets from what the seed project says about its compute.

The seed names machines in four places: the hosts of its state entries, ``config.md``'s compute
table and ``Selected Machines`` list, and its ``External Clusters`` section (C500, Gadi). A
project whose entries are all pending (the usual state before dispatch) still has its machines.

- A lab server (``xuchang-lab1``) becomes an ``ssh`` target whose ``host:`` is the seed's alias.
- C500 (a host ``c500`` or ``finn_cci_c500``, ``c500_afs_base``, or C500 in External Clusters)
  becomes the ``command`` target of ``examples/targets/c500.yaml``: ``sco acp jobs`` templates,
  root on the AFS base, the Docker image and workspace from ``config.md``.
- Gadi (a host ``gadi``, ``gadi_scratch_base``, or Gadi in External Clusters) becomes a ``pbs``
  target with what the project's own ``experiments/pbs/*.sh`` ask for: queue, ``-P``, every
  ``storage`` flag, ``jobfs``, CPUs and memory per GPU, and the modules they load.
- Nothing at all: one ``local`` target.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.scaffold import project_name
from reconciler.seedimport.configmd import SeedConfig

WANDB_MODES = ("online", "offline", "disabled")
NO_HUB = ("__wandb_only__", "__per_machine__")
C500 = "c500"
GADI = "gadi"
C500_LOGIN = "finn_cci_c500"
C500_WORKSPACE = "aceworld-base"
"""The workspace the seed's C500 templates hardcode (``c500_workspace`` in config.md overrides)."""
C500_IMAGE = "metax_pt"
GADI_QUEUE = "gpuvolta"
GADI_MODULES = ("cuda/11.7.0", "python3/3.10.4")
"""The modules the seed's Gadi section names when the project has no PBS script of its own."""

_NCI_SCRATCH = re.compile(r"^/scratch/(?P<project>[A-Za-z0-9_]+)(?:/|$)")
_PBS_LINE = re.compile(r"^#PBS\s+(?P<rest>.+?)\s*$")
_MODULE_LOAD = re.compile(r"^\s*module\s+load\s+(?P<mods>[^#;&|]+)")
_SIZE = re.compile(r"^(?P<n>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[kKmMgGtT]?)[bB]?$")

C500_STATES = {
    "Pending": "queued",
    "WAITING": "queued",
    "QUEUEING": "queued",
    "STARTING": "queued",
    "Running": "running",
    "RUNNING": "running",
    "SUSPENDED": "held",
    "Completed": "completed",
    "SUCCEEDED": "completed",
    "Failed": "failed",
    "FAILED": "failed",
    "Stopped": "cancelled",
    "DELETED": "cancelled",
}
"""Every C500 job state the seed's files name (exec_c500.md's and sco-cli.md's), to ours."""


def platform_of(host: str) -> str:
    """``c500``, ``gadi`` or ``ssh`` for a seed host name."""
    name = host.lower()
    if "c500" in name:
        return C500
    if "gadi" in name:
        return GADI
    return "ssh"


@dataclass(frozen=True)
class PbsScripts:
    """What the project's ``experiments/pbs/*.sh`` headers ask of Gadi (the union over scripts)."""

    queue: str | None = None
    account: str | None = None
    storage: tuple[str, ...] = ()
    jobfs: str | None = None
    cpus_per_gpu: int | None = None
    mem_gb: float | None = None
    modules: tuple[str, ...] = ()


def read_pbs_scripts(scripts: Mapping[str, str]) -> PbsScripts:
    """Read the ``#PBS`` directives and ``module load`` lines of the seed's PBS scripts."""
    queue = account = jobfs = None
    storage: list[str] = []
    modules: list[str] = []
    cpus: list[int] = []
    mems: list[float] = []
    for _name, text in sorted(scripts.items()):
        for line in text.splitlines():
            pbs = _PBS_LINE.match(line.strip())
            if pbs:
                for flag, value in _directives(pbs["rest"]):
                    if flag == "q":
                        queue = queue or value
                    elif flag == "P":
                        account = account or value
                    elif flag == "storage":
                        storage += [s for s in value.split("+") if s and s not in storage]
                    elif flag == "jobfs":
                        jobfs = jobfs or value
                    elif flag == "ncpus_per_gpu":
                        cpus.append(int(value))
                    elif flag == "mem_gb":
                        mems.append(float(value))
                continue
            load = _MODULE_LOAD.match(line)
            if load:
                modules += [m for m in load["mods"].split() if m not in modules]
    return PbsScripts(
        queue=queue,
        account=account,
        storage=tuple(storage),
        jobfs=jobfs,
        cpus_per_gpu=max(cpus) if cpus else None,
        mem_gb=max(mems) if mems else None,
        modules=tuple(modules),
    )


def _directives(rest: str) -> list[tuple[str, str]]:
    """``-q gpuvolta`` / ``-P ab12`` / ``-l ncpus=12,ngpus=1,mem=48GB,storage=a+b`` -> pairs;
    ncpus comes back per GPU (``ncpus_per_gpu``), mem per job in GB (``mem_gb``), as the target's
    ``batch.cpus_per_gpu`` and ``batch.mem_gb`` mean them."""
    words = rest.split()
    if len(words) < 2 or not words[0].startswith("-"):
        return []
    flag, value = words[0][1:], " ".join(words[1:])
    if flag != "l":
        return [(flag, value)]
    resources: dict[str, str] = {}
    for part in re.split(r"[,:]", value):
        key, _, val = part.partition("=")
        if key and val:
            resources[key.strip()] = val.strip()
    out = [(k, v) for k, v in resources.items() if k in ("storage", "jobfs")]
    ngpus = _int(resources.get("ngpus")) or 1
    ncpus = _int(resources.get("ncpus"))
    if ncpus:
        out.append(("ncpus_per_gpu", str(max(1, ncpus // ngpus))))
    mem = _gigabytes(resources.get("mem"))
    if mem:
        out.append(("mem_gb", str(mem)))
    return out


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def _gigabytes(text: str | None) -> float | None:
    match = _SIZE.match(text or "")
    if match is None:
        return None
    scale = {"": 1 / 1024**3, "k": 1 / 1024**2, "m": 1 / 1024, "g": 1, "t": 1024}[match["unit"].lower()]
    return round(float(match["n"]) * scale, 3)


def target_names(hosts: Iterable[str]) -> dict[str, str]:
    """Seed host -> a unique target name that follows the id pattern (every C500 host -> ``c500``,
    every Gadi host -> ``gadi``)."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for host in sorted(set(hosts)):
        platform = platform_of(host)
        if platform in (C500, GADI):
            names[host] = platform
            continue
        base = project_name(host)
        name, n = base, 2
        while name in used or name in (C500, GADI):
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        names[host] = name
    return names


def _first_word(text: str) -> str:
    return text.split(maxsplit=1)[0].strip("`,;") if text.split() else ""


def _base_and_root(project: str, seed: SeedConfig, setting: str, cluster_label: str) -> tuple[str, str]:
    """A cluster's absolute base path (the setting, else External Clusters' line; ``""`` when
    neither names one) and the target root under it (``reconciler/<project>`` without one)."""
    base = _first_word(seed.settings.get(setting) or seed.clusters.get(cluster_label, "")).rstrip("/")
    if not base.startswith("/"):
        return "", f"reconciler/{project}"
    return base, f"{base}/{project}"


def c500_target(project: str, seed: SeedConfig) -> tuple[dict[str, Any], list[str]]:
    """The C500 ``command`` target (as ``examples/targets/c500.yaml``) and what to check by hand."""
    notes: list[str] = []
    base, root = _base_and_root(project, seed, "c500_afs_base", "afs base path")
    if not base:
        notes.append("C500: no AFS base path in config.md; set targets.c500.root to a directory on AFS")
    workspace = seed.settings.get("c500_workspace") or C500_WORKSPACE
    image = _first_word(seed.clusters.get("docker image", "")) or C500_IMAGE
    login = C500_LOGIN
    for word in re.findall(r"[A-Za-z0-9_.-]*c500[A-Za-z0-9_.-]*", seed.clusters.get("", ""), re.IGNORECASE):
        if "cci" in word.lower():
            login = word
            break
    sco = "~/.sco/bin/sco acp jobs"
    target: dict[str, Any] = {
        "kind": "command",
        "host": login,
        "root": root,
        "python": "python3",
        "platform_factor": 1.2,
        "max_runs": 8,
        "templates": {
            "submit": (
                f"{sco} create --workspace-name {workspace} --name {{name}} --image {image} -f pt"
                " --resource-type metax_gpu --resource MetaX.vGPU=1 --replicas 1 -- /bin/sh {script}"
            ),
            "status": f"{sco} describe --workspace-name {workspace} --format json {{job_id}}",
            "cancel": f"{sco} stop --workspace-name {workspace} {{job_id}} || true",
            "find": f"{sco} list --workspace-name {workspace} --name {{name}}",
            "job_id_regex": "pt-[a-z0-9]+",
            "state_regex": '"state"\\s*:\\s*"(\\w+)"',
            "states": dict(C500_STATES),
        },
    }
    return target, notes


def gadi_target(project: str, seed: SeedConfig, host: str, pbs: PbsScripts) -> tuple[dict[str, Any], list[str]]:
    """The Gadi ``pbs`` target, with what the project's PBS scripts ask for."""
    notes: list[str] = []
    base, root = _base_and_root(project, seed, "gadi_scratch_base", "scratch path")
    if not base:
        notes.append("Gadi: no scratch path in config.md; set targets.gadi.root to a directory on /scratch")
    nci = _NCI_SCRATCH.match(base)
    account = pbs.account or _first_word(seed.clusters.get("project code", "")) or (nci["project"] if nci else None)
    storage = list(pbs.storage)
    if not storage and nci:
        storage = [f"scratch/{nci['project']}"]
    modules = list(pbs.modules)
    if not modules:
        listed = seed.clusters.get("modules", "")
        modules = [m for m in listed.replace("module load", " ").split() if "/" in m] or list(GADI_MODULES)
    batch: dict[str, Any] = {"queue": pbs.queue or GADI_QUEUE}
    if account:
        batch["account"] = account
    if storage:
        batch["storage"] = "+".join(storage)
    if pbs.cpus_per_gpu:
        batch["cpus_per_gpu"] = pbs.cpus_per_gpu
    if pbs.mem_gb:
        batch["mem_gb"] = math.ceil(pbs.mem_gb) if pbs.mem_gb >= 1 else pbs.mem_gb
    batch["modules"] = modules
    if pbs.jobfs:
        batch["extra_directives"] = [f"-l jobfs={pbs.jobfs}"]
    target: dict[str, Any] = {
        "kind": "pbs",
        "host": host,
        "root": root,
        "platform_factor": 0.6,
        "batch": batch,
    }
    return target, notes


def machines(seed: SeedConfig, entry_hosts: Iterable[str]) -> list[str]:
    """Every machine the seed project names: its entries' hosts, the selected machines (or, with
    none selected, the compute table's available rows), and its external clusters."""
    found = [h for h in entry_hosts if h]
    listed = list(seed.selected) or [m.name for m in seed.machines if m.available]
    found += listed
    if seed.uses_c500 and not any(platform_of(h) == C500 for h in found):
        found.append(C500)
    if seed.uses_gadi and not any(platform_of(h) == GADI for h in found):
        found.append(GADI)
    return list(dict.fromkeys(found))


SEED_CHECKPOINTS = "experiments/checkpoints"
"""Where the seed's commands put checkpoints (``--checkpoint-dir experiments/checkpoints/<id>/``),
relative to its checkout on the host."""


def seed_checkout(target: Mapping[str, Any], host: str, remote_dirs: Mapping[str, str]) -> str | None:
    """The seed's project dir on ``host``: ``remote_project_dir`` of its env verdict; on Gadi and
    C500 the target's root (the seed's checkout is ``<scratch>/<project>``, ``<AFS>/<project>``)."""
    remote = remote_dirs.get(host)
    if remote is None and target["kind"] in ("pbs", "command") and str(target["root"]).startswith("/"):
        remote = str(target["root"])
    return remote.rstrip("/") if remote else None


def _checkpoints(target: dict[str, Any], host: str, remote_dirs: Mapping[str, str]) -> str | None:
    """The seed's checkpoint folder on ``host``: under its checkout there."""
    remote = seed_checkout(target, host, remote_dirs)
    return f"{remote}/{SEED_CHECKPOINTS}" if remote else None


def build_config(
    project: str,
    seed: SeedConfig,
    entry_hosts: Iterable[str],
    local_name: str,
    pbs: PbsScripts | None = None,
    remote_dirs: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """The config document, the map seed host -> target name, and notes for the person importing.

    ``remote_dirs``: seed host -> its checkout there; each target's ``checkpoint_dir`` is then the
    seed's checkpoint folder, so a resumed run finds the checkpoints the seed's runs wrote."""
    settings = seed.settings
    hosts = machines(seed, entry_hosts)
    names = target_names(hosts)
    targets: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for host, name in names.items():
        if name in targets:
            continue
        platform = platform_of(host)
        if platform == C500:
            target, more = c500_target(project, seed)
        elif platform == GADI:
            target, more = gadi_target(project, seed, host, pbs or PbsScripts())
        else:
            target, more = {"kind": "ssh", "host": host, "root": f"reconciler/{project}"}, []
        checkpoints = _checkpoints(target, host, remote_dirs or {})
        if checkpoints:
            target["checkpoint_dir"] = checkpoints
        else:
            more.append(
                f"{name}: the seed's checkout on {host} is unknown (no progress/env_{host}.json), so checkpoints"
                f" its runs wrote stay under that checkout's {SEED_CHECKPOINTS}/; set targets.{name}.checkpoint_dir"
                f" to that folder for --resume to find them (runs live there under the seed are looked for in"
                f" ~/projects/{project})"
            )
        targets[name] = target
        notes += more
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
    return doc, names, notes
