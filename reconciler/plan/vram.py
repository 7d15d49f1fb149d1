"""GPU memory in the plan (pure): the VRAM estimate each experiment is placed with (``model.vram``
says the order), the desired state with every spec's ``vram_gb`` replaced by its estimate and where
each came from; what each live run holds (``observe_memory``); and what a run over its reservation
teaches the next placements (``learned``: measurements for ``experiments/vram.json``)."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Iterable, Mapping

from reconciler.model.desired import DesiredState
from reconciler.model.observed import RunObservation
from reconciler.model.status import StatusEntry
from reconciler.model.vram import (
    LEARN_STEP,
    MIB_PER_GB,
    OVER,
    VRAM_FILE,
    LiveMemory,
    Measurement,
    VramBook,
    VramEstimate,
    command_hash,
    estimate,
)
from reconciler.plan.context import Context
from reconciler.plan.entries import set_condition
from reconciler.plan.place import attributed_mb

_VRAM_PROBE = operator.attrgetter("vram_probe")


def with_estimates(desired: DesiredState, book: VramBook | None) -> tuple[DesiredState, dict[str, VramEstimate]]:
    """``desired`` with each spec's estimate as its ``vram_gb``, and the estimates by spec id (only
    when a measurement or a ``vram_gb: probe`` spec can change anything: else ``desired`` as it is)."""
    measured = book is not None and bool(book.measurements)
    if not measured and not any(map(_VRAM_PROBE, desired.experiments)):
        return desired, {}
    book = book or VramBook()
    specs = []
    estimates: dict[str, VramEstimate] = {}
    for spec in desired.experiments:
        est = estimate(spec, book, desired.revision, spec.vram_probe)
        estimates[spec.id] = est
        specs.append(spec if est.gb == spec.vram_gb else dataclasses.replace(spec, vram_gb=est.gb))
    return dataclasses.replace(desired, experiments=tuple(specs)), estimates


def observe_memory(entry: StatusEntry, run: RunObservation, ctx: Context) -> StatusEntry:
    """The entry with its live run's GPU memory (``LiveMemory``: what ``nvidia-smi`` lists for the
    run's process group on each GPU, the peak over the attempt, the reservation), and the
    ``OverReservation`` condition once the peak passes the reservation. Unchanged on a target
    without GPUs, or for a run that has never been seen on one."""
    attempt = entry.current
    tobs = ctx.observed.target(attempt.target) if attempt is not None else None
    if attempt is None or tobs is None or tobs.gpus is None:
        return entry
    pgid = run.pid or attempt.pid
    gpus = tuple((gpu.index, used) for gpu in tobs.gpus if (used := attributed_mb(tobs, gpu.index, pgid)) > 0)
    reported = _job_peak(run.sidecar)
    before = entry.gpu_memory
    if not gpus and reported is None and before is None:
        return entry
    seen = max([mb for _, mb in gpus] + [reported or 0.0])
    peak = max(seen, before.peak_mb if before is not None else 0.0)
    raised = before is None or peak > before.peak_mb
    spec = ctx.specs.get(entry.id)
    launched = run.launch.vram_gb if run.launch is not None else None
    reserved_gb = launched if launched is not None else spec.vram_gb if spec is not None else None
    memory = LiveMemory(
        gpus=gpus,
        peak_mb=peak,
        reserved_mb=reserved_gb * MIB_PER_GB if reserved_gb is not None else None,
        at=ctx.now_iso if raised or before is None else before.at,
    )
    if memory != before:
        entry = dataclasses.replace(entry, gpu_memory=memory)
    if memory.over and entry.condition(OVER) is None:
        message = (
            f"attempt {attempt.n} used {peak / MIB_PER_GB:.2f} GB on one GPU, "
            f"{reserved_gb:g} GB reserved: its peak is recorded in {VRAM_FILE} for the next placements"
        )
        entry = set_condition(entry, OVER, "MeasuredOverEstimate", message, ctx)
    return entry


def _job_peak(sidecar: Mapping[str, object] | None) -> float | None:
    """The job's own peak (``gpu_peak_mb``, PyTorch's ``max_memory_allocated``), when it reports one."""
    value = sidecar.get("gpu_peak_mb") if sidecar else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 2**40:
        return float(value)
    return None


def learned(book: VramBook | None, entries: Iterable[StatusEntry], ctx: Context) -> tuple[Measurement, ...]:
    """Measurements this pass learned: of each run over its reservation, its peak, when the book
    holds none for its experiment, commit and target or one the peak passes by ``LEARN_STEP``."""
    known = {(m.exp_id, m.commit, m.target): m for m in (book.measurements if book else ())}
    out = []
    for entry in entries:
        memory = entry.gpu_memory
        if memory is None:  # never seen on a GPU: nothing learned (the usual case)
            continue
        attempt, spec = entry.current, ctx.specs.get(entry.id)
        if not memory.over or attempt is None or spec is None:
            continue
        commit = attempt.git_commit or ctx.desired.revision or ""
        earlier = known.get((entry.id, commit, attempt.target))
        peak_gb = round(memory.peak_mb / MIB_PER_GB, 3)
        if earlier is not None and peak_gb <= earlier.peak_gb * LEARN_STEP:
            continue
        tobs = ctx.observed.target(attempt.target)
        names = sorted({g.name for g in tobs.gpus or () if g.index in attempt.gpus} if tobs else set())
        smi = max((mb for _, mb in memory.gpus), default=None)
        out.append(
            Measurement(
                exp_id=entry.id,
                base_id=spec.base_id,
                command_hash=command_hash(spec.command),
                commit=commit,
                target=attempt.target,
                gpu_model=", ".join(names) or (earlier.gpu_model if earlier else ""),
                peak_gb=peak_gb,
                measured_at=memory.at or ctx.now_iso,
                method=spec.method,
                dataset=spec.dataset,
                smi_peak_mb=smi,
                torch_peak_mb=_job_peak(dict(entry.sidecar)),
                source=f"live run {attempt.n}",
            )
        )
    return tuple(out)
