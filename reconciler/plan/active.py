"""Decisions for an experiment that has a current attempt (running, queued, unreachable, or on
hold with a process that may still live): adopt what the probe saw, collect, fail, kill."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from reconciler.model.actions import Action, Cancel, Collect, Fatal, Launch, Restart
from reconciler.model.config import Target
from reconciler.model.escalation import Escalation
from reconciler.model.ids import code_dir
from reconciler.model.observed import RunObservation
from reconciler.model.seedrun import SEED
from reconciler.model.spec import DesiredRunState
from reconciler.model.status import Attempt, Status, StatusEntry
from reconciler.plan import outcomes
from reconciler.plan.batchjob import decide_job, job_still_ending
from reconciler.plan.context import Context, parse_iso
from reconciler.plan.failure import DISK_FULL, LOST, MIN_FREE_GB, UNKNOWN, Failure, classify, fatal_signature
from reconciler.plan.leases import lease_request
from reconciler.plan.place import gpus_needed
from reconciler.plan.vram import observe_memory

SIDECAR_FIELDS = ("wandb_run_id", "hf_artifact_url")

_UNREACHABLE, _ON_HOLD, _CANCELLED = Status.UNREACHABLE, Status.ON_HOLD, DesiredRunState.CANCELLED
"""Looked up once (an enum member read through its class costs as much as a call)."""


def decide_active(entry: StatusEntry, ctx: Context, attempt: Attempt | None = None) -> tuple[StatusEntry, list[Action]]:
    """Return the entry as the facts make it, and the I/O actions the facts call for
    (``attempt``: the entry's current attempt, when the caller has it)."""
    if attempt is None:
        attempt = entry.current
    assert attempt is not None
    spec = ctx.specs.get(entry.id)
    tobs = ctx.observed.targets.get(attempt.target)
    if tobs is None or not tobs.reachable:
        if entry.status is Status.ON_HOLD and entry.unreachable.consecutive == 0:
            return entry, []
        error = tobs.error if tobs and tobs.error else "no answer"
        return outcomes.silent(entry, ctx.policies, ctx.now, error), []
    if entry.unreachable.consecutive != 0:
        entry = outcomes.answered(entry)
    status = entry.status
    if status is _UNREACHABLE:
        entry = dataclasses.replace(entry, status=Status.RUNNING)
    elif status is _ON_HOLD:
        entry = outcomes.came_back(entry, ctx.now)  # a hold for silence only: the facts below decide
    run = tobs.runs.get((entry.id, attempt.n))
    if run is not None and run.token != attempt.token:
        # A run dir without our token (none, empty or another) is not ours: nothing of it (exit
        # code, pid, result) is taken; a person must look. Never a failure: our job may run.
        if attempt.pid is None and attempt.job_id is None:
            return outcomes.never_started(entry), []
        held = f"token {run.token!r}" if run.token else "no token"
        why = f"{attempt.run_dir or 'the run dir'} on {attempt.target} holds {held}, not ours: left alone"
        return dataclasses.replace(entry, waiting_reason=why), []
    if run is None:
        if attempt.pid is None and attempt.job_id is None:
            return outcomes.never_started(entry), []
        failure = Failure(LOST, (), "run dir missing on the target")
        return outcomes.failed_attempt(entry, failure, spec, ctx.policies, ctx.now), []
    if run.sidecar:
        entry = _merge_sidecar(entry, run, ctx.now_iso)
    pid, start_time = run.pid, run.start_time
    if attempt.pid is None and pid is not None:
        entry = outcomes.update_current(entry, lambda a: dataclasses.replace(a, pid=pid, start_time=start_time))
        entry = dataclasses.replace(entry, pid=pid)
    elif attempt.origin == SEED and attempt.start_time is None and run.alive and start_time:
        # the seed's process, first seen: from now on only this start time is the run
        entry = outcomes.update_current(entry, lambda a: dataclasses.replace(a, start_time=start_time))
    if attempt.origin is not None:
        run = _seed_settled(run, attempt.origin)
    if attempt.job_id is None and run.job_id is not None:
        entry = dataclasses.replace(
            outcomes.update_current(entry, lambda a: dataclasses.replace(a, job_id=run.job_id)), job_id=run.job_id
        )
    wants_cancel = (spec is None and ctx.policies.prune) or (spec is not None and spec.state is _CANCELLED)
    if run.job_id is not None:
        cancelled_job = run.job_state == "cancelled" and run.exit_code != 0
        if run.exit_code is None or cancelled_job:
            entry, actions, final = decide_job(entry, run, spec, ctx, wants_cancel)
            if final:
                return entry, actions
        if job_still_ending(run, ctx):
            return entry, []
    if run.exit_code is not None:
        if wants_cancel:
            return outcomes.cancelled(entry, ctx.now, "cancelled by the spec (the run had ended)"), []
        if run.exit_code == 0:
            return entry, [_collect(entry, run, attempt.target)]
        failure = classify(run.exit_code, run.log_tail, run.job_state, run.oom_evidence)
        if failure.klass == UNKNOWN and tobs.free_disk_gb is not None and tobs.free_disk_gb < MIN_FREE_GB:
            disk = f"{tobs.free_disk_gb:.2f} GB free under {tobs.root or 'the root'} on {attempt.target}"
            failure = Failure(DISK_FULL, (*failure.evidence[-3:], disk), f"disk full ({disk})")
        return outcomes.failed_attempt(entry, failure, spec, ctx.policies, ctx.now, run.exit_code), []
    if run.alive:
        if tobs.gpus is not None:  # else nothing to observe (``observe_memory``)
            entry = observe_memory(entry, run, ctx)
        if wants_cancel:
            why = "removed from the spec (prune)" if spec is None else "cancelled by the spec"
            return entry, [outcomes.kill_action(entry, run=run, reason=Cancel(why))]
        restart = spec is not None and (
            spec.on_change or ("restart" if ctx.policies.restart_on_spec_change else "keep")
        )
        if spec is not None and restart == "restart" and entry.spec_hash != spec.spec_hash:
            return entry, [outcomes.kill_action(entry, run=run, reason=Restart("spec changed"))]
        fatal = fatal_signature(run.log_tail) if run.log_tail else None
        if fatal is not None:
            entry = outcomes.update_current(entry, lambda a: dataclasses.replace(a, evidence=fatal.evidence))
            return entry, [outcomes.kill_action(entry, run=run, reason=Fatal(fatal.klass))]
        return _duration_guard(entry, run, attempt.target, ctx)
    if not run.launched:
        if wants_cancel:
            return outcomes.cancelled(entry, ctx.now, "cancelled before it started"), []
        return entry, [_relaunch(entry, ctx, tobs.root or "")]
    if run.pid is None and (run.age or 0.0) < ctx.policies.lost_grace_seconds:
        return entry, []
    failure = Failure(LOST, tuple(run.log_tail[-5:]), "the process ended without an exit code")
    return outcomes.failed_attempt(entry, failure, spec, ctx.policies, ctx.now), []


def _seed_settled(run: RunObservation, origin: str | None) -> RunObservation:
    """A run the seed started that is gone with no exit code (its wrapper was killed, or the
    scheduler no longer knows the job) but left a result file ended well: the seed's own rule
    ("result present and exit code 0 or empty: completion"). The result is still checked when it
    is collected."""
    if origin != SEED or run.exit_code is not None or run.alive or not run.result_size:
        return run
    if run.job_id is not None and run.job_state not in (None, "completed"):
        return run
    return dataclasses.replace(run, exit_code=0)


def _duration_guard(
    entry: StatusEntry, run: RunObservation, target: str, ctx: Context
) -> tuple[StatusEntry, list[Action]]:
    """Past ``escalate_factor`` x the expected duration: an escalation (the run goes on); past
    ``hold_factor`` x: ``on_hold`` (killed only when the policy says so). A ``continue`` decision
    on this attempt turns the guard off."""
    hours = entry.expected_duration_hours
    if not hours or entry.status is _ON_HOLD:  # held: its escalation waits for a person as it is
        return entry, []
    started = parse_iso(entry.started)
    if started is None or (entry.conditions and entry.condition("Continued") is not None):
        return entry, []
    elapsed = (ctx.now - started).total_seconds() / 3600.0
    policy = ctx.policies.timeouts
    if elapsed <= policy.escalate_factor * hours:
        return entry, []
    over = f"running {elapsed:.2f} h, over {{}}x the expected {hours:g} h"
    if elapsed > policy.hold_factor * hours and entry.status is Status.RUNNING:
        held = Escalation(
            reason=over.format(f"{policy.hold_factor:g}") + ("; killed" if policy.kill_on_hold else "; still running"),
            created=ctx.now_iso,
            needed="continue (let it run), fail, or cancel",
            kind="timeout",
        )
        entry = outcomes.hold(entry, held)
        if policy.kill_on_hold:
            return entry, [outcomes.kill_action(entry, run=run, reason=Fatal("timeout"))]
        return entry, []
    warning = Escalation(
        reason=over.format(f"{policy.escalate_factor:g}") + "; still running",
        created=ctx.now_iso,
        needed=f"nothing yet (at {policy.hold_factor:g}x it goes on hold); continue to let it run, or cancel",
        kind="slow",
    )
    return dataclasses.replace(entry, escalation=outcomes.escalate(entry, warning)), []


def _merge_sidecar(entry: StatusEntry, run: RunObservation, now_iso: str) -> StatusEntry:
    """The job's own fields; the controller's decisions (status, hold, cancel) are never taken from it.
    A checkpoint upload the job reported as failed opens an ``artifact`` escalation (the job kept
    the checkpoint); a later confirmed upload closes it."""
    sidecar = run.sidecar
    if not sidecar:
        return entry
    hf_artifact_url = entry.hf_artifact_url
    if "hf_upload_error" in sidecar or "hf_artifact_url" in sidecar:
        entry = _artifact(entry, sidecar, now_iso)
        hf_artifact_url = _text(sidecar, "hf_artifact_url", entry.hf_artifact_url)
    wandb_run_id = entry.wandb_run_id
    if "wandb_run_id" in sidecar:
        wandb_run_id = _text(sidecar, "wandb_run_id", wandb_run_id)
    if wandb_run_id != entry.wandb_run_id or hf_artifact_url != entry.hf_artifact_url:
        entry = dataclasses.replace(entry, wandb_run_id=wandb_run_id, hf_artifact_url=hf_artifact_url)
    # Every pass, every live run: the job's own fields (those not in _NOT_OWNED) as recorded?
    # Compared at C speed without building them: the recorded fields are all in the sidecar with
    # the same values, none of them is one of ours, and the sidecar has no other field of its own.
    recorded = dict(entry.sidecar)
    if (
        len(sidecar) - len(_NOT_OWNED.intersection(sidecar)) != len(recorded)
        or not _NOT_OWNED.isdisjoint(recorded)
        or not recorded.items() <= sidecar.items()
    ):
        owned = {k: v for k, v in sidecar.items() if k not in _NOT_OWNED}
        entry = dataclasses.replace(entry, sidecar=tuple(sorted(owned.items())))
    return entry


def _text(sidecar: Mapping[str, object], key: str, current: str | None) -> str | None:
    """The sidecar's ``key`` as text (``None`` kept), or ``current`` when the job did not report it."""
    if key not in sidecar:
        return current
    value = sidecar[key]
    return str(value) if value is not None else None


def _artifact(entry: StatusEntry, sidecar: Mapping[str, object], now_iso: str) -> StatusEntry:
    error = sidecar.get("hf_upload_error")
    current = entry.escalation
    if sidecar.get("hf_artifact_url") and current is not None and current.open and current.kind == "artifact":
        return dataclasses.replace(entry, escalation=current.close(f"uploaded: {sidecar['hf_artifact_url']}", now_iso))
    if not error or sidecar.get("hf_artifact_url"):
        return entry
    kept = sidecar.get("checkpoint_dir") or "the run's checkpoint dir"
    problem = Escalation(
        reason=f"checkpoint upload to the Hub failed: {str(error)[:300]}; the checkpoint is kept ({kept})",
        created=now_iso,
        needed="upload it again (or fix the Hub settings) and continue; nothing was deleted",
        kind="artifact",
        evidence=(str(error)[:500],),
    )
    return dataclasses.replace(entry, escalation=outcomes.escalate(entry, problem))


_CONTROLLER_FIELDS = frozenset({"id", "status", "host", "gpu", "pid", "job_id", "retry_count", "started", "finished"})
_NOT_OWNED = _CONTROLLER_FIELDS | frozenset(SIDECAR_FIELDS)


def _collect(entry: StatusEntry, run: RunObservation, target: str) -> Collect:
    attempt = entry.current
    assert attempt is not None
    result = entry.result_path
    return Collect(
        exp_id=entry.id,
        target=target,
        attempt=attempt.n,
        remote_path=f"{attempt.run_dir}/{result}",
        local_path=result,
        sidecar=run.sidecar,
    )


def _relaunch(entry: StatusEntry, ctx: Context, root: str) -> Launch:
    """The run dir exists but no process was ever started for it (a pass died in between)."""
    attempt = entry.current
    assert attempt is not None
    target: Target = ctx.desired.config.target(attempt.target)
    spec = ctx.specs.get(entry.id)
    commit = attempt.git_commit or ctx.desired.revision or ""
    result = entry.result_path
    return Launch(
        exp_id=entry.id,
        target=attempt.target,
        attempt=attempt.n,
        command=attempt.command,
        run_dir=attempt.run_dir,
        token=attempt.token,
        code_dir=code_dir(root, commit),
        commit=commit,
        result_file=result,
        checkpoint_dir=checkpoint_path(target, root, entry.id),
        gpus=attempt.gpus,
        env=attempt.env,
        expected_duration_hours=entry.expected_duration_hours,
        gpu_count=gpus_needed(spec) if spec is not None and target.kind.batch else 0,
        vram_gb=spec.vram_gb if spec is not None else None,
        lease=lease_request(
            target,
            ctx.observed.target(target.name),
            ctx.project,
            attempt.gpus,
            spec.vram_gb if spec else None,
            entry.id,
            attempt.n,
        ),
    )


def checkpoint_path(target: Target, root: str, exp_id: str) -> str:
    base = target.checkpoint_dir or f"{root.rstrip('/')}/checkpoints"
    return f"{base.rstrip('/')}/{exp_id}"
