"""What each target's probe is asked for, from the recorded state and the desired state: which
run dirs to detail (live attempts, every pending entry's next one, the last attempt of a pending
retry) and which batch jobs to query. The probe reports every run dir of ours in brief; only
these get their pid liveness, log tail, GPU attribution and process group looked at."""

from __future__ import annotations

from collections.abc import Iterable
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


def probe_request(
    recorded: StateFile, desired: DesiredState, inflight: Iterable[tuple[str, int, str]] = ()
) -> ProbeRequest:
    """``inflight``: the launches a crashed pass may have started (``.reconciler/inflight``)."""
    return ProbeRequest(_wanted(recorded, desired, inflight), _jobs(recorded), _seed_runs(recorded))


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


def _wanted(
    recorded: StateFile, desired: DesiredState, inflight: Iterable[tuple[str, int, str]]
) -> dict[str, set[tuple[str, int]]]:
    """Which runs each probe must detail: the live attempts (on their own target), the last
    attempt of a pending retry (what is left of its process group: ``plan.leftover``), and the
    launches a crashed pass may have made (the in-flight journal names their target: a pending
    entry's next attempt is asked of that target only, never of every target).

    Every run dir without an exit code is detailed anyway; what a want adds is the details of one
    that ended. A launch whose journal was lost (``.reconciler/`` deleted after a crash) is still
    adopted from its brief record (token, exit code), with less evidence for its failure class."""
    want: dict[str, set[tuple[str, int]]] = {t.name: set() for t in desired.config.targets}
    for exp_id, attempt, target in inflight:
        if target in want:
            want[target].add((exp_id, attempt))
    for entry in recorded.entries:
        a = entry.current
        if a is not None and a.target in want and (entry.status.active or entry.status is Status.ON_HOLD):
            want[a.target].add((entry.id, a.n))
        elif a is not None and a.target in want and entry.status is Status.PENDING and a.pid is not None:
            want[a.target].add((entry.id, a.n))  # a retry waits until that attempt's group is empty
    return want
