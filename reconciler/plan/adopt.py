"""Adoption: a pass that died after creating an attempt's run dir (or after starting it) left a
run of ours that no status records. The next pass takes it over instead of launching again, and
takes over what the launch chose (the run dir's ``launch.json``, as the probe reports it): its
GPUs, command, commit and start time, so that placement counts it where it really runs.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from reconciler.model.ids import launch_token, run_dir
from reconciler.model.observed import LaunchRecord, RunObservation, TargetObservation
from reconciler.model.status import Attempt, Status, StatusEntry
from reconciler.plan import outcomes
from reconciler.plan.context import Context, iso
from reconciler.plan.launchenv import launch_env, render_command

ADOPTED = "adopted"
"""The word of the note an adoption leaves (``attempt N adopted on T: ...``); the commit subject
counts such transitions as adopted, not launched."""


def adopt(entry: StatusEntry, ctx: Context) -> StatusEntry:
    """A pending entry whose next attempt already exists on a target (a pass died after
    creating its run dir or starting it) takes that attempt instead of launching again."""
    n = entry.attempt + 1
    token = None
    key, targets = (entry.id, n), ctx.observed.targets
    for name in ctx.observed_names:
        tobs = targets[name]
        run = tobs.runs.get(key) if tobs.reachable else None
        if run is None:
            continue
        token = token or launch_token(ctx.project, entry.id, n)
        if run.token != token:
            continue
        attempt = _attempt(entry, n, name, tobs, run, ctx)
        why = "started" if run.pid is not None else "created"
        line = f"attempt {n} {ADOPTED} on {name}: an interrupted pass had {why} it"
        return dataclasses.replace(outcomes.started(entry, attempt, ctx.now), notes=outcomes.note(entry.notes, line))
    for exp_id, attempt_n, where in sorted(ctx.inflight) if ctx.inflight else ():
        seen = ctx.observed.target(where)
        if exp_id == entry.id and attempt_n == n and (seen is None or not seen.reachable):
            # Blind: the target does not answer; ``complete`` fills the rest once it does.
            token = launch_token(ctx.project, entry.id, n)
            attempt = Attempt(n=n, target=where, command=entry.command, run_dir="", token=token)
            entry = outcomes.started(entry, attempt, ctx.now, status=Status.UNREACHABLE)
            line = f"attempt {n} {ADOPTED} on {where}: an interrupted pass may have started it"
            return dataclasses.replace(entry, started=None, notes=outcomes.note(entry.notes, line))
    return entry


def complete(entry: StatusEntry, ctx: Context) -> StatusEntry:
    """An attempt adopted blind (from the in-flight journal, its target silent: no run dir
    recorded) gets what its run dir says once the target answers with it."""
    current = entry.current
    if current is None or current.run_dir:
        return entry
    tobs = ctx.observed.target(current.target)
    run = tobs.run(entry.id, current.n) if tobs is not None and tobs.reachable else None
    if tobs is None or run is None or run.token != current.token:
        return entry
    full = _attempt(entry, current.n, current.target, tobs, run, ctx)
    full = dataclasses.replace(full, command=full.command or current.command)
    entry = outcomes.with_attempt(entry, full)
    return dataclasses.replace(
        entry,
        gpu=full.gpus[0] if full.gpus else None,
        started=entry.started or full.started,
        host=full.host or entry.host,
        git_commit=full.git_commit,
    )


def _attempt(
    entry: StatusEntry, n: int, name: str, tobs: TargetObservation, run: RunObservation, ctx: Context
) -> Attempt:
    """Attempt ``n`` as its run dir shows it: what the launch recorded wins over what the
    desired state would render now (the spec may have changed since)."""
    record = run.launch or LaunchRecord()
    spec = ctx.specs.get(entry.id)
    target = ctx.desired.config.target(name) if name in ctx.desired.config.target_names else None
    root = tobs.root or ""
    command = record.command
    if command is None:
        command = entry.command
        if spec is not None and target is not None:
            command = render_command(entry, spec, target, root, n)
    gpus = record.gpus or ()
    env = launch_env(spec, gpus, tobs.gpus is not None, ctx.desired.config) if spec is not None else ()
    started = None
    if run.started_age is not None:
        started = iso(ctx.now - timedelta(seconds=run.started_age))
    return Attempt(
        n=n,
        target=name,
        command=command,
        run_dir=run_dir(root, entry.id, n),
        token=launch_token(ctx.project, entry.id, n),
        host=tobs.host,
        gpus=gpus,
        pid=run.pid,
        start_time=run.start_time,
        started=started,
        git_commit=record.commit or ctx.desired.revision,
        env=env,
    )
