"""Invariant (a) of issue 14, as a pure check over a committed ``dispatch/state.json``: no GPU holds
more live runs of ours than ``max_runs_per_gpu``.

Call ``gpu_violations(state["experiments"], limits)`` with the parsed state file's entries and the
limit (one number for every target, or a mapping target -> limit; a target missing from the
mapping gets the default, 1). A live run is an entry whose status is ``running``, ``queued`` or
``unreachable``, or ``on_hold`` with its current attempt not finished; its GPUs are those of its
current attempt (``attempts`` item whose ``n`` is the entry's ``attempt``). The answer lists one
line per over-booked GPU, naming the runs; empty means the invariant holds.

``live_gpu_jobs(root)`` gives the same picture from the processes themselves (what
``CUDA_VISIBLE_DEVICES`` each live job of a project really got), for a local target.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

LIVE = frozenset({"running", "queued", "unreachable"})
DEFAULT_MAX_RUNS_PER_GPU = 1


def _current(entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for attempt in entry.get("attempts") or ():
        if attempt.get("n") == entry.get("attempt"):
            return attempt  # type: ignore[no-any-return]
    return None


def is_live(entry: Mapping[str, Any]) -> bool:
    """The entry's current attempt may still have a process or job of ours."""
    current = _current(entry)
    if current is None:
        return False
    status = entry.get("status")
    return status in LIVE or (status == "on_hold" and current.get("finished") is None)


def gpu_load(entries: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int], list[str]]:
    """(target, GPU index) -> ids of the live runs recorded on it."""
    load: dict[tuple[str, int], list[str]] = defaultdict(list)
    for entry in entries:
        current = _current(entry)
        if current is None or not is_live(entry):
            continue
        for gpu in current.get("gpus") or ():
            load[(str(current.get("target")), int(gpu))].append(str(entry.get("id")))
    return dict(load)


def gpu_violations(entries: Iterable[Mapping[str, Any]], limits: int | Mapping[str, int]) -> list[str]:
    """One line per GPU with more live runs of ours than its target's ``max_runs_per_gpu``."""
    out = []
    for (target, gpu), ids in sorted(gpu_load(entries).items()):
        limit = limits if isinstance(limits, int) else limits.get(target, DEFAULT_MAX_RUNS_PER_GPU)
        if len(ids) > limit:
            out.append(
                f"{target} GPU {gpu}: {len(ids)} live runs > max_runs_per_gpu {limit} ({', '.join(sorted(ids))})"
            )
    return out


def live_gpu_jobs(root: Path) -> dict[str, tuple[int, ...]]:
    """Run dir -> GPUs (``CUDA_VISIBLE_DEVICES``) of every live job process whose run dir is under
    ``root`` (read from ``/proc/<pid>/environ``; zombies and vanished processes are skipped)."""
    prefix = str(root).rstrip("/") + "/"
    jobs: dict[str, tuple[int, ...]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
                continue
            raw = (proc / "environ").read_bytes()
        except OSError:
            continue
        env = dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)
        run_dir = env.get("RECONCILER_RUN_DIR", "")
        if not run_dir.startswith(prefix) or "CUDA_VISIBLE_DEVICES" not in env:
            continue
        jobs[run_dir] = tuple(int(g) for g in env["CUDA_VISIBLE_DEVICES"].split(",") if g.strip().isdigit())
    return jobs


def job_pids(root: Path) -> dict[str, list[int]]:
    """Run dir -> pids of the live processes whose run dir is under ``root`` (the job's own and its
    shell's: every process that carries the run's environment)."""
    prefix = str(root).rstrip("/") + "/"
    out: dict[str, list[int]] = defaultdict(list)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            raw = (proc / "environ").read_bytes()
        except OSError:
            continue
        for item in raw.decode(errors="replace").split("\0"):
            if item.startswith("RECONCILER_RUN_DIR=") and item[19:].startswith(prefix):
                out[item[19:]].append(int(proc.name))
    return {k: sorted(v) for k, v in out.items()}


def over_booked(jobs: Mapping[str, tuple[int, ...]], limit: int) -> dict[int, int]:
    """GPU index -> live jobs on it, for the GPUs holding more than ``limit`` (``live_gpu_jobs``)."""
    per_gpu: dict[int, int] = defaultdict(int)
    for gpus in jobs.values():
        for gpu in gpus:
            per_gpu[gpu] += 1
    return {gpu: n for gpu, n in sorted(per_gpu.items()) if n > limit}


def kill_runs(root: Path) -> None:
    """SIGKILL the process group of every run under ``root`` (test cleanup)."""
    for pid_file in Path(root).glob("runs/*/*/pid"):
        with contextlib.suppress(OSError, ValueError):
            os.killpg(int(pid_file.read_text().strip()), signal.SIGKILL)
