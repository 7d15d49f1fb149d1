"""GPU facts for the observe stage: the ``nvidia-smi`` parser, re-exported from the backends layer.

The parser lives in ``reconciler.backends.gpus`` because ``ShellRunner.probe`` (a backend) fills
``TargetObservation.gpus`` with it, and backends may not import ``observe`` (import-linter layers).
"""

from __future__ import annotations

from reconciler.backends.gpus import (
    APP_FIELDS,
    APPS_QUERY,
    GPU_FIELDS,
    GPU_QUERY,
    ComputeApp,
    build_gpus,
    foreign_process_counts,
    parse_compute_apps,
    parse_gpu_query,
    parse_number,
)

__all__ = [
    "APPS_QUERY",
    "APP_FIELDS",
    "GPU_FIELDS",
    "GPU_QUERY",
    "ComputeApp",
    "build_gpus",
    "foreign_process_counts",
    "parse_compute_apps",
    "parse_gpu_query",
    "parse_number",
]
