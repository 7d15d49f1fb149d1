"""The environment check a target gets before its first launch (and after its verdict expires):
the command a launch of ``spec`` would run there, with its paths moved to a scratch dir."""

from __future__ import annotations

from reconciler.model.actions import CheckEnv
from reconciler.model.config import Target
from reconciler.model.env import env_hash
from reconciler.model.ids import code_dir, dry_run_dir
from reconciler.model.spec import ExperimentSpec
from reconciler.model.status import StatusEntry


def check_env_action(entry: StatusEntry, spec: ExperimentSpec, target: Target, root: str, commit: str) -> CheckEnv:
    scratch = dry_run_dir(root, spec.id)
    command = spec.render(entry.command, f"{scratch}/checkpoints", result_file=f"{scratch}/{spec.result_path}")
    return CheckEnv(
        target=target.name,
        commit=commit,
        code_dir=code_dir(root, commit),
        command=command,
        env_hash=env_hash(target),
        exp_id=spec.id,
    )
