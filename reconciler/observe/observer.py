"""Observe every target: one probe per target, concurrently, each under a time limit.

Called by the engine after the desired state loaded. A target that fails to answer (connection
refused, timeout, any transport error) is ``reachable=False`` with the error: unknown, never
"the runs are gone". One slow target never stalls the pass beyond its timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping

from reconciler.backends.base import Runner
from reconciler.errors import ReconcilerError
from reconciler.model.metrics import ProbeStat
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
    stats: dict[str, ProbeStat] | None = None,
) -> ObservedState:
    """``stats``, when given, gets each target's probe latency and bytes (``model.metrics``)."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(name: str, runner: Runner) -> TargetObservation:
        async with gate:
            moved, start = _moved(runner), time.perf_counter()
            try:
                probe = runner.probe(want.get(name, ()), (jobs or {}).get(name), (seed or {}).get(name))
                seen = await asyncio.wait_for(probe, timeout)
            except asyncio.TimeoutError:
                seen = TargetObservation(name, reachable=False, error=f"probe timed out after {timeout:.0f} s")
            except ReconcilerError as exc:
                seen = TargetObservation(name, reachable=False, error=str(exc) or type(exc).__name__)
            if stats is not None:
                after = _moved(runner)
                received = getattr(runner, "probe_received", None)  # ShellRunner's (and so BatchRunner's)
                stats[name] = ProbeStat(
                    name,
                    time.perf_counter() - start,
                    seen.reachable,
                    received if isinstance(received, int) else None,
                    None if moved is None or after is None else after - moved,
                    seen.error,
                )
            return seen

    names = sorted(runners)
    seen = await asyncio.gather(*(one(n, runners[n]) for n in names))
    return ObservedState(dict(zip(names, seen, strict=True)))


def _moved(runner: Runner) -> int | None:
    """The bytes the runner's transport has moved so far, both ways (``None``: it does not count)."""
    count = getattr(getattr(runner, "transport", None), "bytes_transferred", None)
    return count if isinstance(count, int) else None
