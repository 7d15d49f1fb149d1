"""Pure parser for ``nvidia-smi`` CSV output (observe stage of the pass).

The target's probe runs the two queries below and sends their raw text back; this module turns
that text into ``GpuObservation`` values. It sits in ``backends`` (the layer of pure builders and
parsers, below ``observe``) so that ``ShellRunner.probe`` can use it. It does no I/O, so every
quirk of the tool is pinned by golden files in ``tests/data/nvidia-smi/``: with or without
``nounits`` and ``noheader``, the ``[N/A]`` and ``[Not Supported]`` placeholders, empty
compute-apps output (no process), and pids that belong to other users or PID namespaces.
"""

from __future__ import annotations

import csv
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from reconciler.model.observed import GpuObservation

GPU_FIELDS = ("index", "uuid", "name", "memory.total", "memory.used", "memory.free", "utilization.gpu")
APP_FIELDS = ("pid", "gpu_uuid", "used_memory")

GPU_QUERY = ("nvidia-smi", f"--query-gpu={','.join(GPU_FIELDS)}", "--format=csv,noheader,nounits")
"""The argv the probe runs for the GPU table (fields in ``GPU_FIELDS`` order)."""
APPS_QUERY = ("nvidia-smi", f"--query-compute-apps={','.join(APP_FIELDS)}", "--format=csv,noheader,nounits")
"""The argv the probe runs for the compute processes (fields in ``APP_FIELDS`` order)."""

_UNITS = ("MiB", "%", "W", "MHz", "C")


@dataclass(frozen=True)
class ComputeApp:
    """One line of ``--query-compute-apps``."""

    pid: int
    gpu_uuid: str
    used_memory_mb: float | None


def parse_number(text: str) -> float | None:
    """A numeric field: ``None`` for ``[N/A]``, ``[Not Supported]``, ``N/A`` and empty values;
    a trailing unit (``81559 MiB``, ``87 %``) is dropped."""
    value = text.strip()
    if not value or value.startswith("[") or value.upper() == "N/A":
        return None
    for unit in _UNITS:
        if value.endswith(unit):
            value = value[: -len(unit)].strip()
            break
    try:
        return float(value)
    except ValueError:
        return None


def _rows(text: str, width: int, header_first: str) -> Iterable[list[str]]:
    """CSV rows of exactly ``width`` fields; header lines and malformed lines are skipped."""
    lines = [line for line in text.splitlines() if line.strip()]
    for row in csv.reader(lines, skipinitialspace=True):
        cells = [cell.strip() for cell in row]
        if len(cells) != width or cells[0] == header_first:
            continue
        yield cells


def parse_gpu_query(text: str) -> list[GpuObservation]:
    """The GPU table (``GPU_QUERY`` output), in the order ``nvidia-smi`` printed it."""
    gpus = []
    for index, uuid, name, total, used, free, util in _rows(text, len(GPU_FIELDS), "index"):
        try:
            number = int(index)
        except ValueError:
            continue
        gpus.append(
            GpuObservation(
                index=number,
                uuid=uuid,
                name=name,
                memory_total_mb=parse_number(total),
                memory_used_mb=parse_number(used),
                memory_free_mb=parse_number(free),
                utilization_pct=parse_number(util),
            )
        )
    return gpus


def parse_compute_apps(text: str) -> list[ComputeApp]:
    """The compute processes (``APPS_QUERY`` output); empty output means none run."""
    apps = []
    for pid, uuid, used in _rows(text, len(APP_FIELDS), "pid"):
        try:
            number = int(pid)
        except ValueError:
            continue
        apps.append(ComputeApp(pid=number, gpu_uuid=uuid, used_memory_mb=parse_number(used)))
    return apps


def build_gpus(query_text: str, apps_text: str | None) -> tuple[GpuObservation, ...]:
    """GPUs with their compute processes attached (a process on an unknown uuid is dropped)."""
    gpus = parse_gpu_query(query_text)
    by_uuid: dict[str, list[tuple[int, float | None]]] = {gpu.uuid: [] for gpu in gpus}
    for app in parse_compute_apps(apps_text or ""):
        if app.gpu_uuid in by_uuid:
            by_uuid[app.gpu_uuid].append((app.pid, app.used_memory_mb))
    return tuple(
        GpuObservation(
            index=gpu.index,
            uuid=gpu.uuid,
            name=gpu.name,
            memory_total_mb=gpu.memory_total_mb,
            memory_used_mb=gpu.memory_used_mb,
            memory_free_mb=gpu.memory_free_mb,
            utilization_pct=gpu.utilization_pct,
            processes=tuple(sorted(by_uuid[gpu.uuid])),
        )
        for gpu in gpus
    )


def foreign_process_counts(gpus: Iterable[GpuObservation], own_pids: Collection[int]) -> dict[int, int]:
    """Per GPU index, how many compute processes are not ours.

    ``own_pids`` are the GPU processes the probe found inside the process group of one of this
    project's live runs; any other pid (another user's, another project's, one from a container's
    PID namespace that the probe cannot map) counts as foreign.
    """
    own = set(own_pids)
    return {gpu.index: sum(1 for pid, _ in gpu.processes if pid not in own) for gpu in gpus}
