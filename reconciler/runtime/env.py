"""The run a job belongs to, read from the environment the launch wrapper sets, and the standard flags.

The wrapper (``reconciler/backends/wrapper.py``) exports ``EXP_ID``, ``RECONCILER_RUN_DIR``,
``RECONCILER_ATTEMPT``, ``RECONCILER_PROJECT`` and ``CUDA_VISIBLE_DEVICES`` before the command
starts. Outside a reconciler run (a script started by hand) none is set: ``current()`` still
answers, with no run dir, so sidecar writes are skipped and everything else works.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_EXP_ID = "local"


@dataclass(frozen=True)
class Run:
    """One attempt of one experiment, as the job sees it."""

    exp_id: str
    run_dir: Path | None
    attempt: int
    project: str | None
    gpus: str
    phase: str | None = None

    @property
    def managed(self) -> bool:
        """True inside a run the reconciler launched (it has a run dir for the sidecar)."""
        return self.run_dir is not None

    @property
    def sidecar_path(self) -> Path | None:
        return self.run_dir / "status.json" if self.run_dir is not None else None

    def earlier_run_dirs(self) -> list[Path]:
        """Run dirs of this experiment's earlier attempts on this target, newest first
        (``<root>/runs/<EXP_ID>/<n>/`` for n below this attempt)."""
        if self.run_dir is None:
            return []
        parent = self.run_dir.parent
        found: list[tuple[int, Path]] = []
        try:
            for child in parent.iterdir():
                if child.name.isdigit() and int(child.name) < self.attempt and child.is_dir():
                    found.append((int(child.name), child))
        except OSError:
            return []
        return [path for _, path in sorted(found, reverse=True)]


def current(exp_id: str | None = None) -> Run:
    """The run from the environment; ``exp_id`` is the fallback when ``EXP_ID`` is not set."""
    env = os.environ
    run_dir = env.get("RECONCILER_RUN_DIR") or None
    try:
        attempt = int(env.get("RECONCILER_ATTEMPT") or 1)
    except ValueError:
        attempt = 1
    return Run(
        exp_id=env.get("EXP_ID") or exp_id or DEFAULT_EXP_ID,
        run_dir=Path(run_dir) if run_dir else None,
        attempt=max(1, attempt),
        project=env.get("RECONCILER_PROJECT") or None,
        gpus=env.get("CUDA_VISIBLE_DEVICES", ""),
        phase=env.get("RECONCILER_PHASE") or None,
    )


MAX_STEPS_ENV = "RECONCILER_MAX_STEPS"
"""Set by ``reconcile probe-vram`` for its short run: the script stops after that many steps."""


def add_standard_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the experiment-code contract's flags: ``--seed --checkpoint-dir --resume --dry-run
    --max-steps`` (``--max-steps`` defaults to ``$RECONCILER_MAX_STEPS``: ``reconcile probe-vram``
    runs the experiment for a few steps to measure its GPU memory)."""
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--checkpoint-dir", default=None, help="write checkpoints here (needed for --resume)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint and the wandb run")
    parser.add_argument("--dry-run", action="store_true", help="check imports, arguments and data; write nothing")
    parser.add_argument(
        "--max-steps",
        type=int,
        default=_env_int(MAX_STEPS_ENV),
        help="stop after this many steps (default $RECONCILER_MAX_STEPS, else no limit)",
    )
    return parser


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None
