"""wandb for a job: ``init_wandb`` (name = EXP_ID, tags, config, resume, offline fallback) behind a
thin ``Tracker`` that does nothing when wandb is disabled.

``wandb`` is imported only when a run is started in ``online`` or ``offline`` mode, so a script
that leaves it disabled never pays for it (or needs it installed). The mode comes from the
argument, else ``WANDB_MODE``, else ``online``; an online start that fails (no key, no network)
falls back to ``offline`` and says so on stderr. The run's files go to ``WANDB_DIR`` or, inside a
reconciler run, the run dir, where ``reconciler.tracking.wandb_sync`` finds offline runs to sync.

The sidecar gets ``wandb_run_id`` as a full URL (online) or the offline run dir's path, plus
``wandb_id`` (the bare id), ``wandb_mode`` and ``wandb_project``: the seed mixed URLs and bare ids
in one field and resumed with a URL as the id (seed bug 23). ``--resume`` resumes the bare id
found in this attempt's sidecar or, failing that, the newest earlier attempt's.
"""

from __future__ import annotations

import os
import platform
import re
import socket
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reconciler.runtime.env import Run, current
from reconciler.runtime.sidecar import _read, update_sidecar

MODES = ("online", "offline", "disabled")
_ID_IN_URL = re.compile(r"/runs/([A-Za-z0-9_-]+)/?$")
_ID_IN_OFFLINE_DIR = re.compile(r"(?:offline-)?run-\d{8}_\d{6}-([A-Za-z0-9_-]+)/?$")


class Tracker:
    """A started wandb run (``run``), or nothing at all when the mode is ``disabled``."""

    def __init__(self, mode: str, run: Any = None, url: str | None = None, run_id: str | None = None) -> None:
        self.mode = mode
        self.run = run
        self.url = url
        self.run_id = run_id

    @property
    def enabled(self) -> bool:
        return self.run is not None

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if self.run is not None:
            self.run.log(dict(metrics), step=step)

    def summarize(self, values: Mapping[str, Any]) -> None:
        if self.run is not None:
            for key, value in values.items():
                self.run.summary[key] = value

    def note(self, text: str) -> None:
        """Append a line to the run's notes (the seed cross-links the checkpoint URL here)."""
        if self.run is not None:
            self.run.notes = f"{self.run.notes}\n{text}".strip() if self.run.notes else text

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None
        if _ACTIVE.get("tracker") is self:
            _ACTIVE.pop("tracker")


_ACTIVE: dict[str, Tracker] = {}
"""The tracker ``init_wandb`` started last in this process, under ``"tracker"``, until it finishes."""


def active() -> Tracker | None:
    """The tracker ``init_wandb`` started last in this process (until it finishes)."""
    return _ACTIVE.get("tracker")


def summarize_final(final: Mapping[str, float]) -> None:
    """``final/<metric>`` in the active run's summary (export reads only these)."""
    tracker = active()
    if tracker is not None:
        tracker.summarize({f"final/{k}": v for k, v in final.items()})


def bare_id(value: str | None) -> str | None:
    """The run id inside a sidecar value: a URL ``.../runs/<id>``, an offline run dir
    ``.../offline-run-<date>_<time>-<id>``, or a bare id."""
    if not value:
        return None
    text = value.strip().rstrip("/")
    for pattern in (_ID_IN_URL, _ID_IN_OFFLINE_DIR):
        match = pattern.search(text)
        if match:
            return match.group(1)
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else None


def resume_id(run: Run) -> str | None:
    """The wandb id to resume: this attempt's sidecar first, then earlier attempts', newest first."""
    paths = [run.sidecar_path] if run.sidecar_path else []
    paths += [d / "status.json" for d in run.earlier_run_dirs()]
    for path in paths:
        doc = _read(path)
        found = doc.get("wandb_id") or bare_id(doc.get("wandb_run_id"))
        if isinstance(found, str) and found:
            return found
    return None


def build_tags(config: Mapping[str, Any], tags: Iterable[str], run: Run) -> list[str]:
    """Given tags, then phase / method / dataset / group from the config (or the run's phase);
    deduplicated, in order, at most 64 characters each (wandb's limit)."""
    wanted: list[Any] = [*tags, config.get("phase") or run.phase]
    wanted += [config.get(key) for key in ("method", "dataset", "group")]
    out: list[str] = []
    for tag in wanted:
        text = str(tag).strip()[:64] if tag is not None else ""
        if text and text not in out:
            out.append(text)
    return out


def build_config(config: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """The run's config: the given keys plus ``exp_id``, ``attempt`` and an ``env/*`` fingerprint."""
    doc: dict[str, Any] = dict(config)
    doc.setdefault("exp_id", run.exp_id)
    doc.setdefault("attempt", run.attempt)
    doc.setdefault("env/hostname", socket.gethostname())
    doc.setdefault("env/python", platform.python_version())
    doc.setdefault("env/cuda_visible_devices", run.gpus)
    if os.environ.get("CONDA_DEFAULT_ENV"):
        doc.setdefault("env/conda", os.environ["CONDA_DEFAULT_ENV"])
    torch = sys.modules.get("torch")
    if torch is not None:
        doc.setdefault("env/torch", getattr(torch, "__version__", ""))
        doc.setdefault("env/cuda_version", getattr(getattr(torch, "version", None), "cuda", None))
    return doc


def normalize_mode(mode: str | None) -> str:
    text = (mode or os.environ.get("WANDB_MODE") or "online").strip().lower()
    text = {"dryrun": "offline", "off": "disabled", "false": "disabled", "run": "online"}.get(text, text)
    if text not in MODES:
        raise ValueError(f"wandb mode {text!r} is not one of {', '.join(MODES)}")
    return text


def init_wandb(
    config: Mapping[str, Any],
    tags: Iterable[str] = (),
    *,
    project: str | None = None,
    entity: str | None = None,
    mode: str | None = None,
    resume: bool = False,
    run: Run | None = None,
    directory: str | Path | None = None,
    init_timeout: float = 60.0,
) -> Tracker:
    """Start the wandb run of this job and record it in the sidecar; see the module docstring."""
    run = run or current()
    chosen: Any = normalize_mode(mode)
    if chosen == "disabled":
        update_sidecar({"wandb_mode": "disabled"}, run)
        _ACTIVE["tracker"] = Tracker("disabled")
        return _ACTIVE["tracker"]
    import wandb

    where = directory or os.environ.get("WANDB_DIR") or run.run_dir
    if where is not None:
        Path(where).mkdir(parents=True, exist_ok=True)
    run_id = resume_id(run) if resume else None
    kwargs: dict[str, Any] = {
        "project": project or os.environ.get("WANDB_PROJECT") or run.project or "reconciler",
        "entity": entity or os.environ.get("WANDB_ENTITY") or None,
        "name": run.exp_id,
        "tags": build_tags(config, tags, run),
        "config": build_config(config, run),
        "dir": str(where) if where is not None else None,
        "settings": wandb.Settings(init_timeout=init_timeout),
    }
    if run_id:
        kwargs.update(id=run_id, resume="allow")
    try:
        started = wandb.init(mode=chosen, **kwargs)
    except Exception as exc:  # any failure to reach or log in to wandb: keep the run, go offline
        if chosen != "online":
            raise
        print(f"reconciler.runtime: wandb online start failed ({exc}); falling back to offline", file=sys.stderr)
        chosen = "offline"
        started = wandb.init(mode=chosen, **kwargs)
    url = started.url if chosen == "online" else None
    offline_dir = str(Path(started.dir).parent) if chosen == "offline" else None
    update_sidecar(
        {
            "wandb_run_id": url or offline_dir,
            "wandb_id": started.id,
            "wandb_mode": chosen,
            "wandb_project": kwargs["project"],
        },
        run,
    )
    _ACTIVE["tracker"] = Tracker(chosen, started, url or offline_dir, started.id)
    return _ACTIVE["tracker"]
