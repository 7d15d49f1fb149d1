"""Observe every target: one probe per target, concurrently, each under a time limit.

Called by the engine after the desired state loaded. A target that fails to answer (connection
refused, timeout, any transport error) is ``reachable=False`` with the error: unknown, never
"the runs are gone". One slow target never stalls the pass beyond its timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping

from reconciler.backends.base import Runner
from reconciler.errors import ReconcilerError
from reconciler.model.observed import ObservedState, TargetObservation
from reconciler.model.seedrun import SeedRun


async def observe(
    runners: Mapping[str, Runner],
    want: Mapping[str, Collection[tuple[str, int]]],
    *,
    jobs: Mapping[str, Mapping[tuple[str, int], str]] | None = None,
    seed: Mapping[str, Mapping[tuple[str, int], SeedRun]] | None = None,
    timeout: float,
    concurrency: int,
) -> ObservedState:
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(name: str, runner: Runner) -> TargetObservation:
        async with gate:
            try:
                probe = runner.probe(want.get(name, ()), (jobs or {}).get(name), (seed or {}).get(name))
                return await asyncio.wait_for(probe, timeout)
            except asyncio.TimeoutError:
                return TargetObservation(name, reachable=False, error=f"probe timed out after {timeout:.0f} s")
            except ReconcilerError as exc:
                return TargetObservation(name, reachable=False, error=str(exc) or type(exc).__name__)

    names = sorted(runners)
    seen = await asyncio.gather(*(one(n, runners[n]) for n in names))
    return ObservedState(dict(zip(names, seen, strict=True)))
