"""The VRAM estimate each experiment is placed with (pure; ``model.vram`` says the order): the
desired state with every spec's ``vram_gb`` replaced by its estimate, and where each came from."""

from __future__ import annotations

import dataclasses

from reconciler.model.desired import DesiredState
from reconciler.model.vram import VramBook, VramEstimate, estimate


def with_estimates(desired: DesiredState, book: VramBook | None) -> tuple[DesiredState, dict[str, VramEstimate]]:
    """``desired`` with each spec's estimate as its ``vram_gb``, and the estimates by spec id (only
    when a measurement or a ``vram_gb: probe`` spec can change anything: else ``desired`` as it is)."""
    measured = book is not None and bool(book.measurements)
    if not measured and not any(s.vram_probe for s in desired.experiments):
        return desired, {}
    book = book or VramBook()
    specs = []
    estimates: dict[str, VramEstimate] = {}
    for spec in desired.experiments:
        est = estimate(spec, book, desired.revision, spec.vram_probe)
        estimates[spec.id] = est
        specs.append(spec if est.gb == spec.vram_gb else dataclasses.replace(spec, vram_gb=est.gb))
    return dataclasses.replace(desired, experiments=tuple(specs)), estimates
