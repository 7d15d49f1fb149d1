"""Job-side helper for training scripts: the standard flags, the run's identity, the sidecar,
the result CSV, wandb and Hugging Face Hub checkpoints.

Importable with the standard library alone (it imports nothing else of ``reconciler``; ``wandb``
and ``huggingface_hub`` are imported only when used), so it runs on a target where only the
shipped bundle (``reconciler.runtime.bundle``) is on ``PYTHONPATH``::

    from reconciler import runtime

    parser = runtime.add_standard_args(argparse.ArgumentParser())
    args = parser.parse_args()
    run = runtime.current()                       # EXP_ID, run dir, attempt, GPUs from the wrapper
    tracker = runtime.init_wandb(config, ["pilot"], resume=args.resume)
    runtime.set_progress(step, total)             # sidecar <run dir>/status.json, atomically
    runtime.write_final({"accuracy": acc})        # final/metrics.json, sidecar, wandb summary
    runtime.write_results(runtime.result_rows(...), args.result_file)
    runtime.upload_checkpoint(args.checkpoint_dir, "me/proj-artifacts")   # deletes only once listed
"""

from __future__ import annotations

from reconciler.runtime.env import DEFAULT_EXP_ID, Run, add_standard_args, current
from reconciler.runtime.hub import HubError, HubFailure, Upload, classify, upload_checkpoint, with_backoff
from reconciler.runtime.results import COLUMNS, GROUPS, render_results, result_rows, write_final, write_results
from reconciler.runtime.sidecar import read_sidecar, set_progress, update_sidecar
from reconciler.runtime.tracker import Tracker, active, init_wandb

__all__ = [
    "COLUMNS",
    "DEFAULT_EXP_ID",
    "GROUPS",
    "HubError",
    "HubFailure",
    "Run",
    "Tracker",
    "Upload",
    "active",
    "add_standard_args",
    "classify",
    "current",
    "init_wandb",
    "read_sidecar",
    "render_results",
    "result_rows",
    "set_progress",
    "update_sidecar",
    "upload_checkpoint",
    "with_backoff",
    "write_final",
    "write_results",
]
