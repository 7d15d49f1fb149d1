"""GPU leases shared by every controller on a target (issue 18, item 3).

Two projects (two controllers) placing on the same host both see the same free memory in the same
second; without a shared record each may fill the same GPU. A target whose config names a lease
directory (``gpus.leases``, e.g. ``/tmp/reconciler-leases``, the same for every project on the
host) gets one lease per launched run there:

- **taken** in the launch's first remote command, before the run dir is claimed, under an
  exclusive lock on the directory (``<dir>/.lock``): the live leases of the run's GPUs are read,
  and the run is refused (``LeaseRefused``, a temporary failure: placed again next pass) when its
  reservation would put a GPU over its memory or over ``max_runs_per_gpu``; else its lease file
  ``<dir>/<name>.json`` is written (project, run, GPUs, reserved MiB, host, created);
- **bound to its process**: the run's wrapper writes ``<dir>/<name>.pid`` (its pid and start time)
  as soon as it recorded them, and removes both files when the run ends;
- **live** while that pid runs with that start time, or, before the wrapper wrote it, for
  ``LEASE_GRACE`` seconds after it was taken (a launch that died in between); a dead lease counts
  for nothing and is removed by the next taker (when the directory lets it: leases of other users
  in a sticky directory are only ignored);
- **read** by every probe of the target, so each controller's placement counts the other
  projects' runs (their slots and reserved memory, beyond what ``nvidia-smi`` already shows for
  them) before placing its own.

The lease directory is made mode 1777 (like ``/tmp``) so the projects of several users can share it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

LEASE_GRACE = 300.0
"""Seconds a lease without a pid file counts as live (the launch is between its two commands)."""


@dataclass(frozen=True)
class LeaseRequest:
    """What the launch asks the target for (``Launch.lease``)."""

    directory: str
    name: str
    """File name stem: ``<project hash>-<exp_id>-<attempt>`` (see ``lease_name``)."""
    project: str
    exp_id: str
    attempt: int
    gpus: tuple[int, ...]
    reserved_mb: float
    """Reserved on each of ``gpus``: the estimate times the target's ``vram_factor``."""
    capacity_mb: tuple[tuple[int, float], ...]
    """Each GPU's total memory as the probe saw it: the reservations on it may not exceed it."""
    max_runs: int
    """``max_runs_per_gpu``: live leases a GPU may hold."""

    def document(self) -> str:
        """The request as the target-side taker reads it (one JSON argument)."""
        doc = {
            "dir": self.directory,
            "name": self.name,
            "project": self.project,
            "exp_id": self.exp_id,
            "attempt": self.attempt,
            "gpus": list(self.gpus),
            "reserved_mb": self.reserved_mb,
            "capacity_mb": {str(g): mb for g, mb in self.capacity_mb},
            "max_runs": self.max_runs,
            "grace": LEASE_GRACE,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    def paths(self) -> tuple[str, str]:
        """The lease file and its pid file."""
        base = f"{self.directory.rstrip('/')}/{self.name}"
        return f"{base}.json", f"{base}.pid"


@dataclass(frozen=True)
class Lease:
    """A live lease as a probe saw it."""

    name: str
    project: str
    exp_id: str
    attempt: int
    gpus: tuple[int, ...]
    reserved_mb: float
    pid: int | None = None
    start_time: str | None = None
    host: str | None = None


def lease_name(project: str, exp_id: str, attempt: int) -> str:
    """A lease's file name stem: unique per project (by a hash of its name, so a project name is
    never a path), experiment and attempt."""
    digest = hashlib.sha256(project.encode()).hexdigest()[:12]
    return f"{digest}-{exp_id}-{attempt}"
