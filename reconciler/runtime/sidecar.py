"""The job's sidecar ``<run dir>/status.json``: read it, update fields atomically, report progress.

The job owns this file; the controller's probe reads it every pass and merges the job's fields
(never its status decisions) into ``dispatch/state.json``. Every write is read-modify-write of
the whole document to a temporary file in the same directory, fsync, then ``os.replace``: the
probe sees the old document or the new one, never half of one. A field set to ``None`` is written
as ``null``, which clears it on the controller's side.

Fields the runtime writes: ``exp_id``, ``attempt``, ``updated``, ``step``, ``total``,
``progress`` (fraction 0..1, as ``schemas/sidecar.schema.json`` has it), ``final`` and
``metrics``, ``wandb_run_id`` (a full URL online, the offline run dir's path offline),
``wandb_id``, ``wandb_mode``, ``wandb_project``, ``hf_artifact_url``, ``hf_artifact_files``,
``hf_upload_error``, ``checkpoint_deleted``.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import sys
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from reconciler.runtime.env import Run, current

_LOCK = threading.Lock()


def utc_now() -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` (the seed's ``finished_at`` format)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: temporary file in the same dir, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_sidecar(run: Run | None = None) -> dict[str, Any]:
    """The current sidecar (empty when there is none, it is unreadable, or outside a run)."""
    run = run or current()
    return _read(run.sidecar_path)


def _read(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def update_sidecar(fields: Mapping[str, Any], run: Run | None = None) -> dict[str, Any] | None:
    """Merge ``fields`` into the sidecar and write it atomically; returns the new document, or
    None outside a reconciler run (no run dir: nothing is written)."""
    run = run or current()
    path = run.sidecar_path
    if path is None:
        return None
    with _LOCK:
        doc = _read(path)
        doc.update(fields)
        doc["exp_id"] = run.exp_id
        doc["attempt"] = run.attempt
        doc["updated"] = utc_now()
        atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return doc


def set_progress(step: int, total: int | None = None, run: Run | None = None, **extra: Any) -> dict[str, Any] | None:
    """Record how far training got: ``step``, ``total``, ``progress`` (= step/total) and any
    extra JSON scalars (``epoch=3``, ``loss=0.4``)."""
    if step < 0 or (total is not None and total <= 0):
        raise ValueError(f"set_progress: step {step} must be >= 0 and total {total} > 0")
    fields: dict[str, Any] = {"step": int(step), "total": total}
    if total:
        fields["progress"] = round(min(1.0, step / total), 4)
    for key, value in extra.items():
        fields[key] = None if isinstance(value, float) and not math.isfinite(value) else value
    peak = gpu_peak_mb()
    if peak is not None:
        fields["gpu_peak_mb"] = peak
    return update_sidecar(fields, run)


def gpu_peak_mb() -> float | None:
    """PyTorch's peak allocated GPU memory so far, in MiB, over the visible devices; ``None``
    when the job has not imported torch or has no CUDA device (``reconcile probe-vram`` and the
    live attribution read it from the sidecar as ``gpu_peak_mb``)."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        if cuda is None or not cuda.is_available() or not cuda.is_initialized():
            return None
        peak = max(cuda.max_memory_allocated(i) for i in range(cuda.device_count()))
    except Exception:  # a job's helper never fails the job over a statistic
        return None
    return round(float(peak) / 2**20, 1)
