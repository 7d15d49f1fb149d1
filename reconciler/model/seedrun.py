"""Runs the seed system started, taken over by ``reconcile import-seed`` (issue 17).

A seed project may hold runs that are live when it moves over: a ``nohup`` wrapper on a lab server
(its ``pid`` and ``started``), a PBS job on Gadi or a C500 job (its ``job_id``). The import gives
each such entry an attempt with ``origin: seed``; the passes then watch it like a run of ours:

- **where**: its ``run_dir`` is the seed's checkout on the target (``remote_project_dir``, the
  Gadi scratch or C500 AFS project dir), where the seed's wrapper writes
  ``experiments/logs/<id>.log`` and ``experiments/logs/<id>_exit.log`` (``EXIT_CODE:<n>``) and
  the job writes its result file (the entry's ``result_file``);
- **which process**: the recorded pid counts as the run only while it is the seed's process: its
  command line names the experiment, or it started within ``MATCH_BEFORE``/``MATCH_AFTER`` of the
  seed's ``started``; once seen, its start time is recorded and only that start time matches
  (a reused pid never reads as the run);
- **how it ended**: the exit code from the exit log; a process gone with no code but a result
  file is done (the seed's own rule), one gone with neither is lost; a job through the scheduler,
  by the job id, like ours;
- **what it holds**: its GPU (the seed's ``gpu``) counts when placing;
- **stopping it** (cancel, a fatal log line, a timeout with ``kill_on_hold``): the process and its
  descendants (it is no process-group leader of ours), or the job through the scheduler.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from datetime import datetime, timezone

SEED = "seed"
"""``Attempt.origin`` of a run the seed started; also its ``token`` (no run dir holds one)."""

MATCH_BEFORE = 15 * 60.0
"""Seconds a seed process may appear to have started before the seed's ``started`` (clock skew
between the agent that wrote it and the host)."""
MATCH_AFTER = 60 * 60.0
"""Seconds after ``started`` it may have started (the seed wrote ``started`` before connecting)."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class SeedRun:
    """What the probe is asked about one seed run (``observe.request`` builds it)."""

    pid: int | None
    start_time: str | None
    """The process's start time once a probe has seen it (``/proc/<pid>/stat`` field 22)."""
    started: float | None
    """The seed's ``started`` as a Unix time, for the first match."""
    log: str
    exit_log: str
    result: str
    job_id: str | None = None


def log_path(project_dir: str, exp_id: str) -> str:
    return f"{project_dir.rstrip('/')}/experiments/logs/{exp_id}.log"


def exit_log_path(project_dir: str, exp_id: str) -> str:
    return f"{project_dir.rstrip('/')}/experiments/logs/{exp_id}_exit.log"


def result_path(project_dir: str, result_file: str) -> str:
    return f"{project_dir.rstrip('/')}/{result_file}"


def seed_run(
    exp_id: str,
    project_dir: str,
    result_file: str,
    pid: int | None,
    start_time: str | None,
    started: str | None,
    job_id: str | None,
) -> SeedRun:
    return SeedRun(
        pid=pid,
        start_time=start_time,
        started=unix_time(started),
        log=log_path(project_dir, exp_id),
        exit_log=exit_log_path(project_dir, exp_id),
        result=result_path(project_dir, result_file),
        job_id=job_id,
    )


def unix_time(text: str | None) -> float | None:
    """An ISO-8601 time (``Z`` or an offset; naive read as UTC) as a Unix time."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def project_dir_error(path: object) -> str | None:
    """Why ``path`` cannot be a seed run's project dir: it must be absolute or under ``~/``,
    normalised (no ``..``, ``.`` or empty parts) and free of control characters."""
    if not isinstance(path, str) or not path:
        return "run_dir of a seed run must be its project dir on the target"
    body = path[2:] if path.startswith("~/") else path[1:] if path.startswith("/") else None
    if body is None:
        return f"run_dir {path!r} of a seed run must be absolute or start with ~/"
    if _CONTROL.search(path) or (body and posixpath.normpath(body) != body.rstrip("/")) or "//" in body:
        return f"run_dir {path!r} of a seed run must be a normalised path"
    if any(part in ("..", ".") for part in body.split("/")):
        return f"run_dir {path!r} of a seed run must be a normalised path"
    return None
