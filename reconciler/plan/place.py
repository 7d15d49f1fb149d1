"""Placement: which target (and which GPUs) a pending experiment goes to, if any.

Deterministic: targets are tried least loaded first (then by name); GPUs with the most free
memory first (then by index). Every live run of ours (recorded or adopted) holds its slots and the
memory ``nvidia-smi`` does not show for it yet (``count_active``); each placement reserves its
slots and memory, so later experiments in the same pass see them. When nothing fits, the reason
names every target and why, and the GPUs that had the memory but were excluded (blacklisted, at
``max_runs_per_gpu``, or reserved for runs of ours).
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.config import Target
from reconciler.model.env import EnvVerdict, env_hash
from reconciler.model.ids import launch_token
from reconciler.model.observed import GpuObservation, LaunchRecord, TargetObservation
from reconciler.model.spec import ExperimentSpec
from reconciler.model.status import Attempt
from reconciler.plan.context import Context
from reconciler.plan.failure import MIN_FREE_GB

MB_SLACK = 1e-3
"""MiB of rounding a fit may be short by: free memory computed as total less used and a
reservation of ``vram_factor x vram_gb`` are floats (9830.399999999994 free for a need of
9830.4 is a fit)."""


@dataclass(frozen=True)
class Placement:
    target: Target
    root: str
    gpus: tuple[int, ...]
    gpu_host: bool = False
    """The target has GPUs (so a run given none must be hidden from them)."""
    gpu_count: int = 0
    """On a batch target: GPUs to request from the scheduler (it picks the devices)."""


def place(spec: ExperimentSpec, ctx: Context, pinned: str | None = None) -> Placement | str:
    """A placement, or the reason none was possible. ``pinned``: only that target will do (a
    retry stays where its checkpoints are)."""
    names = spec.targets or ctx.desired.config.target_names
    if pinned is not None and pinned in names:
        names = (pinned,)
    key = (names, spec.gpus, spec.vram_gb, ctx.reservations)
    refused = ctx.unplaceable.get(key)
    if refused is not None:  # an alike experiment found nothing, and nothing was placed since
        return refused
    placed = _place(spec, names, ctx)
    if isinstance(placed, str):
        ctx.unplaceable[key] = placed
    return placed


def _place(spec: ExperimentSpec, names: tuple[str, ...], ctx: Context) -> Placement | str:
    """``place`` over ``names`` (every input it reads besides the context is in its memo key:
    the target names, the GPU count and the VRAM estimate)."""
    candidates = sorted(names, key=lambda n: (ctx.runs_on_target[n], n))
    reasons: list[str] = []
    for name in candidates:
        target = ctx.desired.config.target(name)
        tobs = ctx.observed.target(name)
        if tobs is None or not tobs.reachable:
            reasons.append(f"{name} unreachable")
            continue
        if tobs.free_disk_gb is not None and tobs.free_disk_gb < MIN_FREE_GB:
            reasons.append(f"{name} disk nearly full ({tobs.free_disk_gb:.1f} GB free)")
            continue
        verdict = env_state(target, ctx)
        if verdict is not None and not verdict.ready:
            why = verdict.evidence[-1] if verdict.evidence else verdict.notes
            reasons.append(f"{name} env failed" + (f" ({why})" if why else ""))
            continue
        if target.max_runs is not None and ctx.runs_on_target[name] >= target.max_runs:
            reasons.append(f"{name} at max_runs ({target.max_runs})")
            continue
        if target.kind.batch:
            _reserve(spec, target, (), ctx)
            return Placement(target, tobs.root or target.root, (), gpu_count=gpus_needed(spec))
        gpus = _pick_gpus(spec, target, tobs, ctx)
        if isinstance(gpus, str):
            reasons.append(gpus)
            continue
        _reserve(spec, target, gpus, ctx)
        return Placement(target, tobs.root or target.root, gpus, gpu_host=tobs.gpus is not None)
    return "; ".join(reasons) if reasons else "no eligible target"


def env_state(target: Target, ctx: Context) -> EnvVerdict | None:
    """The target's verdict if it still holds for this commit, env settings and age; else ``None``
    (a check is due before launching there)."""
    known = ctx.env_states.get(target.name)
    if known is not None and known[0] is target:  # once per target and pass: its inputs do not change
        return known[1]
    verdict = ctx.env.get(target.name)
    if verdict is not None:
        commit = ctx.desired.revision or ""
        expected = env_hash(target, ctx.policies.env_check_command(target))
        if not verdict.fresh(commit, expected, ctx.now, ctx.policies.env_ttl_hours):
            verdict = None
    ctx.env_states[target.name] = (target, verdict)
    return verdict


def gpus_needed(spec: ExperimentSpec) -> int:
    """GPUs a batch job asks for: the spec's count, else one when it has a VRAM estimate."""
    return spec.gpus if spec.gpus is not None else (1 if spec.vram_gb else 0)


def _pick_gpus(spec: ExperimentSpec, target: Target, tobs: TargetObservation, ctx: Context) -> tuple[int, ...] | str:
    # A VRAM estimate without a GPU count means one GPU: such a run never goes to a CPU target.
    need = spec.gpus if spec.gpus is not None else (1 if spec.vram_gb or tobs.gpus is not None else 0)
    if tobs.gpus is None:
        return f"{target.name} has no GPU (needs {need})" if need else ()
    if need == 0:
        return ()
    factor = target.gpus.vram_factor
    need_mb = (spec.vram_gb or 0.0) * 1024.0 * factor
    usable = [g for g in tobs.gpus if usable_gpu(g, target)]
    fits = [
        g
        for g in usable
        if ctx.runs_on_gpu[(target.name, g.index)] < target.gpus.max_runs_per_gpu
        and _free_mb(g, target.name, ctx) >= need_mb - MB_SLACK
    ]
    fits.sort(key=lambda g: (-_free_mb(g, target.name, ctx), g.index))
    if len(fits) >= need:
        return tuple(sorted(g.index for g in fits[:need]))
    excluded = _excluded(tobs.gpus, target, need_mb, ctx)
    why = f" ({'; '.join(excluded)})" if excluded else ""
    if spec.vram_gb:
        amount = f"{spec.vram_gb * factor:.1f} GB free"
        if fits:
            return f"only {len(fits)} of the {need} GPUs needed with {amount} on {target.name}{why}"
        return f"no GPU with {amount} on {target.name}{why}"
    if fits:
        return f"only {len(fits)} of the {need} GPUs needed free on {target.name}{why}"
    return f"no free GPU on {target.name}{why}"


def _excluded(gpus: tuple[GpuObservation, ...], target: Target, need_mb: float, ctx: Context) -> list[str]:
    """The GPUs that have ``need_mb`` free by ``nvidia-smi`` but were not eligible, each with why
    (so that "no GPU with N GB free" is never said while one has it)."""
    out = []
    for gpu in sorted(gpus, key=lambda g: g.index):
        raw = _free_mb(gpu, target.name, None)
        if raw < need_mb - MB_SLACK:
            continue
        label = f"GPU {gpu.index} {gpu.name}"
        runs = ctx.runs_on_gpu[(target.name, gpu.index)]
        if not usable_gpu(gpu, target):
            out.append(f"{label} blacklisted")
        elif runs >= target.gpus.max_runs_per_gpu:
            out.append(f"{label} at max_runs_per_gpu ({runs} of {target.gpus.max_runs_per_gpu})")
        else:
            reserved = ctx.reserved_mb[(target.name, gpu.index)] / 1024.0
            out.append(f"{label} has {raw / 1024.0:.1f} GB free, {reserved:.1f} GB of it held for runs of ours")
    return out


def usable_gpu(gpu: GpuObservation, target: Target) -> bool:
    """Neither its index nor its model is blacklisted on ``target``."""
    if gpu.index in target.gpus.blacklist:
        return False
    return not any(model.lower() in gpu.name.lower() for model in target.gpus.blacklist_models)


def _free_mb(gpu: GpuObservation, target: str, ctx: Context | None) -> float:
    """Free MiB by ``nvidia-smi`` less what this pass holds for runs of ours (none without ``ctx``)."""
    free = gpu.memory_free_mb
    if free is None:
        total, used = gpu.memory_total_mb, gpu.memory_used_mb
        free = (total - used) if total is not None and used is not None else 0.0
    return free - (ctx.reserved_mb[(target, gpu.index)] if ctx is not None else 0.0)


def _reserve(spec: ExperimentSpec, target: Target, gpus: tuple[int, ...], ctx: Context) -> None:
    ctx.reservations += 1
    ctx.runs_on_target[target.name] += 1
    for index in gpus:
        ctx.runs_on_gpu[(target.name, index)] += 1
        ctx.reserved_mb[(target.name, index)] += (spec.vram_gb or 0.0) * 1024.0 * target.gpus.vram_factor


def count_active(attempt: Attempt, vram_gb: float | None, ctx: Context) -> None:
    """Account for a live run of ours (recorded or adopted) before placing new ones: its slots,
    and on each of its GPUs the memory ``nvidia-smi`` does not show for it yet.

    A young run has not allocated its memory yet, so the observed free memory still counts it as
    free: it holds ``max(estimate, attributed) - shown`` on top, where ``attributed`` is what
    ``nvidia-smi`` lists for the processes of the run's process group and ``shown`` the part of it
    already missing from the free figure (so never counted twice). The GPU table and the process
    list are two ``nvidia-smi`` calls: a run that allocates between them is listed with memory the
    used figure does not hold yet. So ``shown`` is capped: the runs of ours on a GPU are taken to
    show at most its used memory less the other processes it lists. The estimate is
    ``vram_factor x vram_gb``, as for a new run: every run of ours keeps its margin, so the runs on
    a GPU never hold more than its memory (without other users') / ``vram_factor`` (design
    invariant 8). A run without an estimate holds only its slot."""
    target = attempt.target
    ctx.runs_on_target[target] += 1
    if not attempt.gpus:  # a slot only (``hold`` over no GPU; no memory to work out)
        ctx.reservations += 1
        return
    config = ctx.desired.config
    factor = config.target(target).gpus.vram_factor if target in config.target_names else 1.0
    hold(target, attempt.gpus, attempt.pid, (vram_gb or 0.0) * 1024.0 * factor, ctx)


def hold(target: str, gpus: tuple[int, ...], pgid: int | None, estimate_mb: float, ctx: Context) -> None:
    """A live run's hold on each of its ``gpus``: a slot, and ``max(estimate, attributed) - shown``
    of memory (``count_active``); ``pgid``: its process group (its wrapper's pid)."""
    ctx.reservations += 1
    tobs = ctx.observed.target(target)
    for index in gpus:
        key = (target, index)
        ctx.runs_on_gpu[key] += 1
        seen = attributed_mb(tobs, index, pgid)
        shown = max(0.0, min(seen, _used_by_ours(tobs, index) - ctx.shown_mb[key]))
        ctx.shown_mb[key] += shown
        ctx.reserved_mb[key] += max(estimate_mb, seen) - shown


def _used_by_ours(tobs: TargetObservation | None, index: int) -> float:
    """The most of GPU ``index``'s used memory that can be ours: its used figure less what it lists
    for processes not in a run of ours (0 when the figure is unknown)."""
    gpu = next((g for g in tobs.gpus if g.index == index), None) if tobs is not None and tobs.gpus else None
    if gpu is None or gpu.memory_used_mb is None:
        return 0.0
    others = sum(used or 0.0 for pid, used in gpu.processes if pid not in tobs.gpu_groups) if tobs else 0.0
    return max(0.0, gpu.memory_used_mb - others)


def count_unrecorded(counted: set[tuple[str, str, int]], ctx: Context) -> None:
    """Account for every run dir of ours (our token) that a probe saw with live processes (its
    wrapper alive, or processes left in its group after the wrapper ended) and that no live entry
    holds (``counted``: (target, exp_id, attempt)): the attempt of a pending retry whose old group
    is still being stopped, a failed run whose child outlived the wrapper. Its GPUs are those its
    launch recorded; its estimate the recorded one, else the spec's. What runs holds the GPU,
    whatever the status says."""
    for name in ctx.observed_names:
        tobs = ctx.observed.targets[name]
        if not tobs.reachable:
            continue
        # the runs to count, in (exp_id, attempt) order (sorted once filtered: usually none is left)
        left = [
            (key, run) for key, run in tobs.runs.items() if (run.alive or run.group) and (name, *key) not in counted
        ]
        for (exp_id, n), run in sorted(left):
            token = launch_token(ctx.desired.config.project, exp_id, n)
            if run.token != token:
                continue
            record = run.launch or LaunchRecord()
            spec = ctx.specs.get(exp_id)
            vram = record.vram_gb if record.vram_gb is not None else spec.vram_gb if spec is not None else None
            held = Attempt(n=n, target=name, command="", run_dir="", token=token, gpus=record.gpus or (), pid=run.pid)
            count_active(held, vram, ctx)


def attributed_mb(tobs: TargetObservation | None, index: int, pgid: int | None) -> float:
    """MiB ``nvidia-smi`` lists on GPU ``index`` for the processes of group ``pgid`` (a run of
    ours: its wrapper's pid is its process group)."""
    if tobs is None or tobs.gpus is None or pgid is None:
        return 0.0
    groups = tobs.gpu_groups
    return sum(
        used or 0.0 for gpu in tobs.gpus if gpu.index == index for pid, used in gpu.processes if groups.get(pid) == pgid
    )
