"""Before any retry, the last attempt's process group must be empty (pure).

A job killed by a signal, or whose wrapper died, can leave children in its process group (a
data loader, a ``&`` in the command) that still hold the GPU. The probe lists what is left of a
run's group once its leader is gone (``RunObservation.group``, pid reuse excluded); while
anything is, the retry does not launch: the group is killed (TERM, then KILL: the backends'
kill path) and the retry waits for a pass that sees the group empty.
"""

from __future__ import annotations

import dataclasses

from reconciler.model.actions import Kill, Leftover
from reconciler.model.status import StatusEntry
from reconciler.plan import outcomes
from reconciler.plan.context import Context


def stop_leftovers(entry: StatusEntry, ctx: Context) -> tuple[StatusEntry, Kill | None]:
    """For a pending entry: the ``Kill`` of its last attempt's leftover processes, and the entry
    waiting for them; ``None`` when that group is empty, unknown (target silent) or a batch job."""
    attempt = entry.current
    if attempt is None or attempt.job_id is not None:
        return entry, None
    tobs = ctx.observed.target(attempt.target)
    run = tobs.run(entry.id, attempt.n) if tobs is not None and tobs.reachable else None
    if run is None or not run.group or run.token != attempt.token:  # a run dir not ours: not our group
        return entry, None
    pids = ", ".join(str(p) for p in run.group[:5]) + (", ..." if len(run.group) > 5 else "")
    why = f"attempt {attempt.n} left live processes on {attempt.target} (pid {pids}): stopping them before a retry"
    kill = outcomes.kill_action(entry, reason=Leftover(why), run=run)
    return (entry if entry.waiting_reason == why else dataclasses.replace(entry, waiting_reason=why)), kill
