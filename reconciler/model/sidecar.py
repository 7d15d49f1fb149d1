"""What of a job's sidecar (``<run dir>/status.json``) the controller keeps: a whitelisted,
size-capped subset (issue 15: a job rewriting a 180 KB random sidecar every second put all of it
in ``dispatch/state.json``).

The job, and so the target, is not trusted. ``confine_sidecar`` keeps the keys the runtime writes
(``reconciler.runtime``) and the dashboard, notes and export read; every value is cut to size
(strings to ``MAX_TEXT`` characters, lists and mappings to ``MAX_ITEMS`` entries, nesting to
``MAX_NESTING``, numbers finite and 64-bit); what is left out is named under ``DROPPED`` so the
user sees it. Applied where the probe's answer enters (``reconciler.backends.probe``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

KEYS = frozenset(
    {
        # identity and the job's own view (informative)
        "id",
        "exp_id",
        "attempt",
        "status",
        "updated",
        "notes",
        # progress and metrics (dashboard, notes, export)
        "step",
        "total",
        "epoch",
        "progress",
        "metrics",
        "final",
        "history",
        "step_logs",
        # tracking and artifacts (reconciler.runtime.tracker, reconciler.runtime.hub)
        "wandb_run_id",
        "wandb_id",
        "wandb_mode",
        "wandb_project",
        "wandb_artifact",
        "hf_artifact_url",
        "hf_artifact_repo",
        "hf_artifact_path",
        "hf_artifact_files",
        "hf_artifact_file_count",
        "hf_upload_error",
        "checkpoint_deleted",
        "checkpoint_dir",
    }
)
"""The sidecar keys kept in the state; any other key is dropped (and named under ``DROPPED``)."""
MAX_TEXT = 512
"""Characters kept of a string value (longer ones end in ``…``)."""
MAX_KEY = 64
"""Characters of a key of a nested mapping (a metric name); longer keys are dropped."""
MAX_ITEMS = 64
"""Entries kept of a mapping (``metrics``, ``final``) or a list (``hf_artifact_files``)."""
MAX_HISTORY = 256
"""Points kept of a learning curve (``history``, ``step_logs``): the newest."""
MAX_NESTING = 3
"""Levels of lists and mappings under a key (``history`` is a list of mappings of numbers)."""
MAX_BYTES = 32 * 1024
"""The kept subset as JSON at most this large: the largest values are dropped until it fits."""
DROPPED = "sidecar_dropped"
"""The key under which the names of dropped keys are listed (at most ``MAX_DROPPED_NAMES``)."""
MAX_DROPPED_NAMES = 20
_INT = 2**63


def confine_sidecar(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The kept subset of ``doc`` (see the module docstring); never raises."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in doc.items():
        if not isinstance(key, str) or key not in KEYS:
            dropped.append(str(key))
            continue
        limit = MAX_HISTORY if key in ("history", "step_logs") else MAX_ITEMS
        clean = _value(value, 0, limit)
        if clean is _DROP:
            dropped.append(key)
        else:
            kept[key] = clean
    while kept and len(json.dumps(kept, allow_nan=False)) > MAX_BYTES:
        largest = max(kept, key=lambda k: len(json.dumps(kept[k], allow_nan=False)))
        del kept[largest]
        dropped.append(largest)
    if dropped:
        names = sorted(_text(name, MAX_KEY) for name in dropped)
        if len(names) > MAX_DROPPED_NAMES:
            names = [*names[:MAX_DROPPED_NAMES], f"… and {len(names) - MAX_DROPPED_NAMES} more"]
        kept[DROPPED] = names
    return kept


class _Drop:
    pass


_DROP: Any = _Drop()


def _text(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _value(value: object, depth: int, items: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -_INT <= value < _INT else _DROP
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _text(value, MAX_TEXT)
    if depth >= MAX_NESTING:
        return _DROP
    if isinstance(value, list):
        out = [_value(v, depth + 1, MAX_ITEMS) for v in value[-items:]]
        return [v for v in out if v is not _DROP]
    if isinstance(value, Mapping):
        kept = {}
        for k, v in list(value.items())[:items]:
            if isinstance(k, str) and len(k) <= MAX_KEY:
                clean = _value(v, depth + 1, MAX_ITEMS)
                if clean is not _DROP:
                    kept[k] = clean
        return kept
    return _DROP
