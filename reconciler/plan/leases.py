"""GPU leases in the plan (pure; ``model.leases`` says what a lease is): the request a launch
carries, and the other projects' leases counted before placing."""

from __future__ import annotations

from reconciler.model.config import Target
from reconciler.model.leases import LeaseRequest, lease_name
from reconciler.model.observed import TargetObservation
from reconciler.plan.context import Context
from reconciler.plan.place import hold


def lease_request(
    target: Target,
    tobs: TargetObservation | None,
    project: str,
    gpus: tuple[int, ...],
    vram_gb: float | None,
    exp_id: str,
    attempt: int,
) -> LeaseRequest | None:
    """The lease a launch on ``gpus`` of ``target`` (as ``tobs`` saw it) takes, when the target
    names a lease directory."""
    directory = target.gpus.leases
    if not directory or not gpus or tobs is None or tobs.gpus is None:
        return None
    totals = {g.index: g.memory_total_mb for g in tobs.gpus}
    capacity = tuple((g, float(mb)) for g in gpus if (mb := totals.get(g)) is not None)
    return LeaseRequest(
        directory=directory,
        name=lease_name(project, exp_id, attempt),
        project=project,
        exp_id=exp_id,
        attempt=attempt,
        gpus=gpus,
        reserved_mb=round((vram_gb or 0.0) * 1024.0 * target.gpus.vram_factor, 1),
        capacity_mb=capacity,
        max_runs=target.gpus.max_runs_per_gpu,
    )


def count_leases(counted: set[tuple[str, str, int]], ctx: Context) -> None:
    """Hold, before placing, what every live lease on a target holds that no run counted so far
    does (``counted``: (target, exp_id, attempt) of the runs of ours already held): the runs of
    other projects, placed by their own controllers. Each holds a slot on its GPUs and its
    reserved memory beyond what ``nvidia-smi`` already shows for its process group."""
    for name in ctx.observed_names:
        tobs = ctx.observed.targets[name]
        if not tobs.reachable or not tobs.leases:
            continue
        for lease in tobs.leases:
            if lease.project == ctx.project and (name, lease.exp_id, lease.attempt) in counted:
                continue  # a run of ours, held from the state or the probe already
            hold(name, lease.gpus, lease.pid, lease.reserved_mb, ctx)
