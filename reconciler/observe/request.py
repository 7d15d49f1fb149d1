"""What each target's probe is asked for, from the recorded state and the desired state: which
run dirs to detail (live attempts, every pending entry's next one, the last attempt of a pending
retry) and which batch jobs to query. The probe reports every run dir of ours in brief; only
these get their pid liveness, log tail, GPU attribution and process group looked at."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.desired import DesiredState
from reconciler.model.seedrun import SEED, SeedRun, seed_run
from reconciler.model.status import StateFile, Status


@dataclass(frozen=True)
class ProbeRequest:
    want: dict[str, set[tuple[str, int]]]
    """target -> (exp_id, attempt) of the runs to detail."""
    jobs: dict[str, dict[tuple[str, int], str]]
    """target -> (exp_id, attempt) -> batch job id of the attempts that may still be queued or running."""
    seed: dict[str, dict[tuple[str, int], SeedRun]]
    """target -> (exp_id, attempt) -> where to look for a live run the seed started (no run dir of
    ours holds it: ``model.seedrun``)."""


def probe_request(recorded: StateFile, desired: DesiredState) -> ProbeRequest:
    return ProbeRequest(_wanted(recorded, desired), _jobs(recorded), _seed_runs(recorded))


def _seed_runs(recorded: StateFile) -> dict[str, dict[tuple[str, int], SeedRun]]:
    runs: dict[str, dict[tuple[str, int], SeedRun]] = {}
    for entry in recorded.entries:
        a = entry.current
        if a is None or a.origin != SEED or a.finished is not None:
            continue
        if entry.status.active or entry.status is Status.ON_HOLD:
            run = seed_run(entry.id, a.run_dir, entry.result_path, a.pid, a.start_time, a.started, a.job_id)
            runs.setdefault(a.target, {})[(entry.id, a.n)] = run
    return runs


def _jobs(recorded: StateFile) -> dict[str, dict[tuple[str, int], str]]:
    """The batch job of every attempt that may still be queued or running, by target."""
    jobs: dict[str, dict[tuple[str, int], str]] = {}
    for entry in recorded.entries:
        a = entry.current
        if a is not None and a.job_id and (entry.status.active or entry.status is Status.ON_HOLD):
            jobs.setdefault(a.target, {})[(entry.id, a.n)] = a.job_id
    return jobs


def _wanted(recorded: StateFile, desired: DesiredState) -> dict[str, set[tuple[str, int]]]:
    """Which runs each probe must detail: the live attempts, every pending entry's next one, and
    the last attempt of a pending retry (what is left of its process group: ``plan.leftover``)."""
    want: dict[str, set[tuple[str, int]]] = {t.name: set() for t in desired.config.targets}
    pending_ids = {e.id: e.attempt for e in recorded.entries if e.status is Status.PENDING}
    known = recorded.by_id()
    for spec in desired.experiments:
        if spec.id not in known:
            pending_ids[spec.id] = 0
    for entry in recorded.entries:
        a = entry.current
        if a is not None and a.target in want and (entry.status.active or entry.status is Status.ON_HOLD):
            want[a.target].add((entry.id, a.n))
        elif a is not None and a.target in want and entry.status is Status.PENDING and a.pid is not None:
            want[a.target].add((entry.id, a.n))  # a retry waits until that attempt's group is empty
    for runs in want.values():
        runs.update((exp_id, attempt + 1) for exp_id, attempt in pending_ids.items())
    return want
