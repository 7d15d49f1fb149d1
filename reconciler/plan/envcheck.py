"""The environment check a target gets before its first launch (and after its verdict expires).

It is the target's, not an experiment's: the neutral checks (code present, the environment
activates, Python runs, GPUs visible) and, when the config names one, ``env_check.command`` (per
target, else in ``policies``). No experiment's command is run, so one experiment's own failure
(a crashing ``--dry-run``) never fails its target for the others."""

from __future__ import annotations

from reconciler.model.actions import CheckEnv
from reconciler.model.config import Policies, Target
from reconciler.model.env import env_hash
from reconciler.model.ids import code_dir


def check_env_action(target: Target, policies: Policies, root: str, commit: str) -> CheckEnv:
    command = policies.env_check_command(target)
    return CheckEnv(
        target=target.name,
        commit=commit,
        code_dir=code_dir(root, commit),
        command=command or "",
        env_hash=env_hash(target, command),
    )
