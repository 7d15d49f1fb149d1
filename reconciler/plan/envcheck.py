"""The environment check a target gets before its first launch (and after its verdict expires).

It is the target's, not an experiment's: the neutral checks (code present, the environment
activates, Python runs, GPUs visible) and, when the config names one, ``env_check.command`` (per
target, else in ``policies``). No experiment's command is run, so one experiment's own failure
(a crashing ``--dry-run``) never fails its target for the others."""

from __future__ import annotations

from reconciler.model.actions import CheckEnv
from reconciler.model.config import Policies, Target
from reconciler.model.env import EnvVerdict, env_hash
from reconciler.model.escalation import Escalation
from reconciler.model.ids import code_dir
from reconciler.model.spec import ExperimentSpec
from reconciler.plan.context import Context
from reconciler.plan.place import env_state


def check_env_action(
    target: Target, policies: Policies, root: str, commit: str, previous: EnvVerdict | None = None
) -> CheckEnv:
    """The check of ``target`` at ``commit``; with the repair ladder when the target allows it
    (``env.repair``) and ``previous`` (its last verdict) shows no repair for this commit and env
    settings yet: the ladder runs once per commit, and a later check carries its record."""
    command = policies.env_check_command(target)
    hash_ = env_hash(target, command)
    repaired = previous.repaired(commit, hash_) if previous is not None else None
    return CheckEnv(
        target=target.name,
        commit=commit,
        code_dir=code_dir(root, commit),
        command=command or "",
        env_hash=hash_,
        repair=target.env.repair if repaired is None else None,
        repaired=repaired,
    )


def env_escalation(spec: ExperimentSpec, ctx: Context) -> Escalation | None:
    """An ``env`` escalation for an experiment that could not be placed because every target it
    may run on failed its environment check at this commit even after the repair ladder: only a
    person can fix that (the ladder runs once per commit)."""
    if ctx.env_broken is None:
        ctx.env_broken = {}
        for target in ctx.desired.config.targets:
            verdict = env_state(target, ctx)
            if verdict is not None and not verdict.ready and verdict.repair is not None and not verdict.repair.ready:
                ctx.env_broken[target.name] = verdict
    if not ctx.env_broken:
        return None
    names = spec.targets or ctx.desired.config.target_names
    if not names or any(name not in ctx.env_broken for name in names):
        return None
    broken = [ctx.env_broken[name] for name in names]
    why = "; ".join(f"{v.target}: {(v.evidence[-1] if v.evidence else v.notes)[:200]}" for v in broken)
    files = ", ".join(f"progress/env_{v.target}.json" for v in broken)
    return Escalation(
        reason=f"no target can run it: the environment check still fails after the repair ladder ({why})",
        created=ctx.now_iso,
        needed=f"fix the environment by hand (what ran: {files}), then `reconcile env-check`; or cancel",
        kind="env",
        evidence=tuple(line for v in broken for line in v.evidence[-5:]),
    )
