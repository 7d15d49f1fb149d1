"""Turn the seed's state entries into experiment specs for ``dispatch/imported.yaml``.

The seed kept one entry per seed (``<base>_s<N>``) with the seed, id, checkpoint dir and result
path spelled out in each command. Those become placeholders (``{seed}``, ``{exp_id}``,
``{checkpoint_dir}``, ``{result_file}``); entries of one base whose specs are then equal fold into
one spec with ``seeds:``, which expands back to the same ids. Anything else stays one spec per
entry, with its id as it was. Archived entries (``is_archived``) become no spec.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.load.paths import project_path_error
from reconciler.model.spec import Group

GROUPS = tuple(g.value for g in Group)
SEEDED_ID = re.compile(r"^(?P<base>.+)_s(?P<seed>\d+)$")
_ID_CHARS = "A-Za-z0-9_-"
_CHECKPOINT_ARG = re.compile(r"""(?P<flag>--checkpoint[-_]dir[= ])(?:'[^']*'|"[^"]*"|\S+)""")


def is_archived(entry: Mapping[str, Any]) -> bool:
    """The seed archives a finished pilot by renaming its phase (``"Phase 4 (archived)"``); such an
    entry stays a record (with an ``Archived`` condition) and never becomes a spec to run again."""
    return "archived" in str(entry.get("phase") or "").lower()


def group_of(value: Any) -> str:
    """The seed's group, or ``analysis`` for values outside the vocabulary (``other``)."""
    text = str(value or "").strip().lower()
    return text if text in GROUPS else "analysis"


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _replace_id(text: str, exp_id: str) -> str:
    pattern = rf"(?<![{_ID_CHARS}]){re.escape(exp_id)}(?![{_ID_CHARS}])"
    return re.sub(pattern, "{exp_id}", text)


def template_command(entry: Mapping[str, Any], seed: int | None = None) -> str:
    """The entry's command with its own paths, id and ``seed`` (unless ``None``) as placeholders.

    The seed's ``--checkpoint-dir experiments/checkpoints/<id>/`` (relative to its checkout)
    becomes ``{checkpoint_dir}``, which expands to ``<target checkpoint_dir>/<EXP_ID>`` outside the
    code dir (a resume survives a new commit); the import points the target's ``checkpoint_dir``
    at the seed's ``experiments/checkpoints`` (``targets.build_config``), so it is the same folder.
    """
    cmd = _CHECKPOINT_ARG.sub(r"\g<flag>{checkpoint_dir}", str(entry.get("command") or ""))
    result = str(entry.get("result_file") or "")
    if result and result in cmd:
        cmd = cmd.replace(result, "{result_file}")
    cmd = _replace_id(cmd, str(entry["id"]))
    if seed is not None:
        cmd = re.sub(rf"(--seed[= ]){seed}(?!\d)", r"\g<1>{seed}", cmd)
    return cmd


def spec_fields(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Everything of a spec but ``id``, ``command`` and ``seeds``, in a readable key order."""
    out: dict[str, Any] = {"group": group_of(entry.get("group"))}
    for key in ("method", "dataset"):
        if entry.get(key):
            out[key] = str(entry[key])
    if entry.get("phase") not in (None, ""):
        out["phase"] = str(entry["phase"])
    stage, priority, retries = (
        as_int(entry.get("stage")),
        as_int(entry.get("priority")),
        as_int(entry.get("max_retries")),
    )
    if stage is not None and stage >= 1:
        out["stage"] = stage
    if priority is not None:
        out["priority"] = priority
    hours = as_float(entry.get("expected_duration_hours"))
    if hours is not None and hours > 0:
        out["expected_duration_hours"] = hours
    vram_mb = as_float(entry.get("estimated_vram_mb"))
    if vram_mb is not None and vram_mb > 0:
        out["vram_gb"] = round(vram_mb / 1024, 2)
    if retries is not None and retries >= 0:
        out["max_retries"] = retries
    result = _replace_id(str(entry.get("result_file") or ""), str(entry["id"]))
    if result and project_path_error(result) is None:  # else the default, under experiments/results/
        out["result_file"] = result
    metric = entry.get("early_stop_metric")
    if metric:
        # The seed's rule (seed-system 5.2): stop unless the method beats the best baseline by at
        # least the threshold, in points of a 0-100 metric. Ours trails by default; say it is theirs.
        early: dict[str, Any] = {"metric": str(metric), "rule": "must_beat", "scale": "percent"}
        threshold, after = as_float(entry.get("early_stop_threshold_pct")), as_int(entry.get("early_stop_check_after"))
        if threshold is not None:
            early["threshold_pct"] = threshold
        if after is not None and after >= 1:
            early["check_after"] = after
        out["early_stop"] = early
    if isinstance(entry.get("description"), str) and entry["description"].strip():
        out["description"] = entry["description"].strip()
    return out


def _spec(exp_id: str, command: str, fields: Mapping[str, Any], seeds: Sequence[int] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"id": exp_id, "command": command}
    if seeds:
        spec["seeds"] = sorted(seeds)
    spec.update(fields)
    return spec


def build_specs(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One spec per base id whose seeded entries differ only in the seed, else one per entry."""
    entries = [e for e in entries if not is_archived(e)]
    ids = {str(e["id"]) for e in entries}
    by_base: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
    for entry in entries:
        match = SEEDED_ID.match(str(entry["id"]))
        seed = as_int(entry.get("seed"))
        if match and (seed is None or seed == int(match["seed"])):
            by_base.setdefault(match["base"], []).append((int(match["seed"]), entry))
    specs: list[dict[str, Any]] = []
    folded: set[str] = set()
    for base, members in by_base.items():
        shapes = {(template_command(e, seed), repr(spec_fields(e))) for seed, e in members}
        if len(shapes) == 1 and base not in ids:
            seed, first = members[0]
            seeds = [n for n, _ in members]
            specs.append(_spec(base, template_command(first, seed), spec_fields(first), seeds))
            folded.update(str(e["id"]) for _, e in members)
    for entry in entries:
        if str(entry["id"]) not in folded:
            specs.append(_spec(str(entry["id"]), template_command(entry), spec_fields(entry)))
    return sorted(specs, key=lambda s: s["id"])
