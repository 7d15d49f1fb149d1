"""Convert a project of the seed system (``config/config.md``, ``dispatch/state.json``) into ours.

``plan_import`` reads the seed files and returns what to write; it writes nothing itself:

* ``config/reconciler.yaml``: project, targets (one per seed host), wandb and HF settings;
* ``dispatch/imported.yaml``: one spec per seed entry, or per base id when seeds fold;
* ``dispatch/state.json``: the seed's state in our canonical form (original kept as
  ``dispatch/state.seed.json``, written once and never replaced);
* ``dispatch/decisions.yaml`` and the schema copies in ``config/schemas/`` when absent, and the
  reconciler's ``.gitignore`` lines.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from reconciler import scaffold
from reconciler.seedimport.configmd import SeedConfig, parse_config_md
from reconciler.seedimport.progress import escalation_from_seed, read_env_verdicts, read_escalations
from reconciler.seedimport.specs import build_specs
from reconciler.seedimport.state import adopt_live, convert_state, merge_sidecars, with_results
from reconciler.seedimport.targets import build_config, read_pbs_scripts, seed_checkout

CONFIG = "config/reconciler.yaml"
DISPATCH = "dispatch/imported.yaml"
DECISIONS = "dispatch/decisions.yaml"
STATE = "dispatch/state.json"
BACKUP = "dispatch/state.seed.json"
CONFIG_MD = "config/config.md"
PROGRESS = "progress"
PBS_SCRIPTS = "experiments/pbs"
MAX_PBS_SCRIPTS = 2000
MAX_PBS_SCRIPT_BYTES = 256 * 1024


class SeedImportError(ValueError):
    """The seed files cannot be read."""


@dataclass(frozen=True)
class SeedImport:
    project: str
    files: list[scaffold.PlannedFile]
    entries: int = 0
    specs: int = 0
    notes: list[str] = field(default_factory=list)


class _Dumper(yaml.SafeDumper):
    """Block style, indented lists; short lists of scalars in flow style (``seeds: [0, 1, 2]``)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = len(data) <= 16 and all(isinstance(x, (int, float)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def dump_yaml(doc: Any, header: list[str]) -> str:
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10_000)
    return "\n".join(header) + "\n" + body


def _read_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"experiments": []}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SeedImportError(f"{path}: not valid JSON ({exc}); restore it with git first") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("experiments", []), list):
        raise SeedImportError(f"{path}: expected an object with an 'experiments' list")
    bad = [i for i, e in enumerate(doc.get("experiments") or ()) if not (isinstance(e, dict) and e.get("id"))]
    if bad:
        raise SeedImportError(f"{path}: experiments[{bad[0]}] has no 'id'")
    return doc


def _pbs_scripts(root: Path) -> dict[str, str]:
    """The seed's Gadi job scripts (``experiments/pbs/*.sh``), by name."""
    folder = root / PBS_SCRIPTS
    if not folder.is_dir() or folder.is_symlink():
        return {}
    scripts = {}
    for path in sorted(folder.glob("*.sh"))[:MAX_PBS_SCRIPTS]:
        if path.is_file() and not path.is_symlink() and path.stat().st_size <= MAX_PBS_SCRIPT_BYTES:
            scripts[path.name] = path.read_text(encoding="utf-8", errors="replace")
    return scripts


def plan_import(root: Path, project: str | None = None, local_target: str = "local") -> SeedImport:
    """Read the seed project at ``root`` and return the files of the converted project."""
    config_md = root / CONFIG_MD
    seed = parse_config_md(config_md.read_text(encoding="utf-8")) if config_md.exists() else SeedConfig()
    settings = seed.settings
    state_path = root / STATE
    seed_state = _read_state(state_path)
    entries: list[dict[str, Any]] = [dict(e) for e in seed_state.get("experiments") or ()]
    notes = [f"merged sidecar {name}" for name in merge_sidecars(entries, root / "dispatch")]
    name = project or scaffold.project_name(
        settings.get("project_name") or str(seed_state.get("project") or "") or root.resolve().name
    )
    hosts = [str(e["host"]) for e in entries if isinstance(e.get("host"), str) and e["host"].strip()]
    pbs = read_pbs_scripts(_pbs_scripts(root))
    verdicts = read_env_verdicts(root / PROGRESS)
    remote_dirs = {h: v.remote_project_dir for h, v in verdicts.items() if v.remote_project_dir}
    config, targets, target_notes = build_config(name, seed, [*hosts, *verdicts], local_target, pbs, remote_dirs)
    notes += [
        f"seed env verdict for {h!r}: {v.status or 'no status'} (not reused: the first pass checks the target again)"
        for h, v in verdicts.items()
    ]
    updated = str(seed_state.get("updated") or "")
    for exp_id, text in read_escalations(root / PROGRESS, {str(e["id"]) for e in entries}).items():
        entry = next(e for e in entries if str(e["id"]) == exp_id)
        entry["escalation"] = escalation_from_seed(text, entry, updated)
        notes.append(f"seed escalation progress/escalate_{exp_id}.md imported ({entry['escalation']['status']})")
    config_header = [scaffold.schema_comment("config", CONFIG), f"# Imported from {CONFIG_MD} by import-seed."]
    files = [scaffold.PlannedFile(CONFIG, dump_yaml(config, config_header))]
    specs = build_specs(entries)
    if specs:
        header = [
            scaffold.schema_comment("dispatch", DISPATCH),
            f"# Imported from the seed system's {STATE} by reconcile import-seed.",
        ]
        files.append(scaffold.PlannedFile(DISPATCH, dump_yaml({"version": 1, "experiments": specs}, header)))
    decisions = {"version": 1, "decisions": []}
    header = [scaffold.schema_comment("decisions", DECISIONS)]
    files.append(scaffold.PlannedFile(DECISIONS, dump_yaml(decisions, header), scaffold.KEEP))
    files += scaffold.schema_files(scaffold.KEEP)
    if state_path.exists():
        with state_path.open(encoding="utf-8", newline="") as f:  # byte-exact, CRLF included
            files.append(scaffold.PlannedFile(BACKUP, f.read(), scaffold.KEEP))
        state = convert_state({**seed_state, "experiments": entries}, name, targets)
        state, adopted = adopt_live(state, *_checkouts(config, targets, remote_dirs, name), _now())
        state, metrics = with_results(state, root)
        notes += adopted + metrics
        files.append(scaffold.PlannedFile(STATE, state.dumps(), scaffold.REPLACE))
    files.append(scaffold.gitignore())
    notes += [f"seed host {h!r} -> target {t!r} ({config['targets'][t]['kind']})" for h, t in targets.items()]
    notes += target_notes
    return SeedImport(name, files, entries=len(entries), specs=len(specs), notes=notes)


SEED_DEFAULT_CHECKOUT = "~/projects/{project}"
"""Where the seed's templates put a lab server's checkout when no env verdict says (its
``<REMOTE_PROJECT_DIR>`` example): the live runs on such a host are looked for there."""


def _checkouts(
    config: Mapping[str, Any], targets: Mapping[str, str], remote_dirs: Mapping[str, str], project: str
) -> tuple[dict[str, str], frozenset[str]]:
    """Target -> the seed's project dir there, and the targets whose runs are batch jobs."""
    docs: Mapping[str, Mapping[str, Any]] = config["targets"]
    checkouts: dict[str, str] = {}
    for host, name in targets.items():
        found = seed_checkout(docs[name], host, remote_dirs)
        checkouts.setdefault(name, found or SEED_DEFAULT_CHECKOUT.format(project=project))
    batch = frozenset(n for n, doc in docs.items() if doc.get("kind") in ("pbs", "slurm", "command"))
    return checkouts, batch


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
