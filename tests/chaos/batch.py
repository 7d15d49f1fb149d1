"""Batch scenarios of the chaos suite: PBS targets through the project's PBS shim.

A seed-stable share of the scenarios (``is_batch``: ``CHAOS_BATCH``, default 0.25, of every
``(seed, index)``; 1 plays only batch scenarios, 0 none) run on a project whose targets are one
``local`` target (``ta``) and two ``pbs`` targets (``pa``, ``pb``) on one shim server
(``tests/shims/pbs``, first on ``PATH``, state in ``PBS_SHIM_DIR``). Their experiments run on
PBS only or on PBS and the local target. Besides the faults of every scenario, they get:

``crash``       also at ``after_submit`` (``BATCH_POINTS``: the scheduler answered, its id not recorded)
``sched``       a scheduler fault through the shim's ``control.json``: ``hold`` (the job is held;
                a person releases it with ``qrls`` once a pass has shown it ``on_hold``),
                ``node_fail``, ``preempt`` (attempt 1 of one experiment's seeds: armed when the
                scenario starts), ``queue_delay`` (seconds, from the step on)
``qdel``        a person deletes a live job on the cluster while a pass runs
``qstat_down``  the server refuses ``qstat`` (``Connection refused``) for k passes

And the batch invariants (``final_violations``, ``failed_attempts``): no attempt submitted twice (the
shim's jobs by name, at most one per ``(exp_id, attempt)``); nothing marked failed while ``qstat``
was failing; every recorded ``job_id`` exists in the shim and carries its attempt's name.

This module knows the shim and the scenario's batch parts; ``harness`` plays them.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import textwrap
from pathlib import Path
from typing import Any

SHIM = Path(__file__).resolve().parents[1] / "shims" / "pbs"
SHARE_ENV = "CHAOS_BATCH"
DEFAULT_SHARE = 0.25
BATCH_FAULTS = ("sched", "qdel", "qstat_down")
BATCH_TARGETS = ("ta", "pa", "pb")
PBS_TARGETS = ("pa", "pb")
PROJECT = "chaostest"
SUBMIT_POINT = "after_submit"
SCHED_FAULTS = ("hold", "node_fail", "preempt", "queue_delay")
EXPERIMENT_TARGETS = (["pa"], ["pb"], ["pa", "pb"], ["ta", "pa"], ["pb", "ta"])
NEW_EXPERIMENT_TARGETS = ["pa", "ta"]
"""Targets of the experiment a ``commit`` step adds in a batch scenario."""
LIVE = ("Q", "H", "R", "E", "W", "T", "B", "S")


def share() -> float:
    return float(os.environ.get(SHARE_ENV, str(DEFAULT_SHARE)))


def is_batch(seed: int, index: int) -> bool:
    """Whether scenario ``index`` of ``seed`` is a batch scenario: its own random stream, so the
    other scenarios stay what they were, and a higher share keeps the batch ones of a lower."""
    return random.Random(f"{seed}:{index}:batch").random() < share()


def replay_prefix() -> str:
    """Environment a replay command needs (the share, when it is not the default)."""
    return f"{SHARE_ENV}={os.environ[SHARE_ENV]} " if SHARE_ENV in os.environ else ""


def config(command_timeout: float) -> str:
    batch = "{queue: workq, mem_gb: 1}"
    return textwrap.dedent(
        f"""\
        version: 1
        project: {PROJECT}
        targets:
          ta:
            kind: local
            root: .reconciler/runs-a
            max_runs: 8
          pa:
            kind: pbs
            root: .reconciler/runs-pa
            python: python3
            batch: {batch}
          pb:
            kind: pbs
            root: .reconciler/runs-pb
            python: python3
            batch: {batch}
        policies:
          poll_interval: 60
          command_timeout: {command_timeout:g}
          backoff: {{base_seconds: 0, factor: 1, max_seconds: 0}}
        """
    )


def fault_kind(rng: random.Random, local_faults: tuple[str, ...]) -> str:
    """Batch faults and crashes weigh 2 each, every other fault 1."""
    return rng.choice((*local_faults, "crash", *BATCH_FAULTS, *BATCH_FAULTS))


def crash_point(rng: random.Random, points: tuple[str, ...], multi_hit: tuple[str, ...]) -> str:
    point = rng.choice((*points, SUBMIT_POINT, SUBMIT_POINT, SUBMIT_POINT))
    return point + (rng.choice(["", "", ":2"]) if point in (*multi_hit, SUBMIT_POINT) else "")


def fault_arg(rng: random.Random, kind: str, exp_ids: list[str]) -> str:
    """The argument of a batch-only fault step."""
    if kind == "sched":
        what = rng.choice(SCHED_FAULTS)
        return f"{what}:{rng.choice([1, 2, 3])}" if what == "queue_delay" else f"{what}:{rng.choice(exp_ids)}"
    if kind == "qdel":
        return str(rng.randint(0, 5))
    if kind == "qstat_down":
        return str(rng.randint(1, 2))
    raise ValueError(f"not a batch fault: {kind}")


def job_key(name: str) -> tuple[str, str] | None:
    """``(exp_id, attempt)`` of a job named ``rc.<project>.<exp_id>.<attempt>.<hash>``."""
    prefix = f"rc.{PROJECT}."
    if not name.startswith(prefix):
        return None
    parts = name[len(prefix) :].rsplit(".", 2)
    return (parts[0], parts[1]) if len(parts) == 3 else None


def pattern(exp: str) -> str:
    """Job names of attempt 1 of every seed of base experiment ``exp``."""
    return f"rc.{PROJECT}.{exp}_s*.1.*"


class Shim:
    """The shim server of one scenario: its environment, its jobs, and a person at its CLI."""

    def __init__(self, directory: Path, person_env: dict[str, str] | None = None) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.person_env = person_env
        """The person's environment (the jobs a ``qrls`` starts inherit it), shim settings added."""

    def env(self) -> dict[str, str]:
        return {"PBS_SHIM_DIR": str(self.dir)}

    def jobs(self) -> list[dict[str, Any]]:
        try:
            data = json.loads((self.dir / "jobs.json").read_text())
        except (OSError, ValueError):
            return []
        return sorted(data.get("jobs", {}).values(), key=lambda j: int(j["seq"]))

    def live(self) -> list[dict[str, Any]]:
        return [j for j in self.jobs() if j["state"] in LIVE]

    def control(self) -> dict[str, Any]:
        try:
            data = json.loads((self.dir / "control.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def set_control(self, **changes: Any) -> None:
        data = self.control()
        for key, value in changes.items():
            if value is None:
                data.pop(key, None)
            elif isinstance(value, list):
                data[key] = sorted({*data.get(key, []), *value})
            else:
                data[key] = value
        tmp = self.dir / "control.json.tmp"
        tmp.write_text(json.dumps(data))
        tmp.replace(self.dir / "control.json")

    def person(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        """A person's command, run in the shim's dir: what a job submitted there writes (its
        ``.o``/``.e`` files, as PBS puts them in the submission dir) stays in the scenario."""
        env = {**(os.environ if self.person_env is None else self.person_env), **self.env()}
        return subprocess.run(
            [str(SHIM / tool), *args], env=env, capture_output=True, text=True, timeout=60, cwd=self.dir
        )

    def release_held(self) -> list[str]:
        held = [j["id"] for j in self.jobs() if j["state"] == "H"]
        if held:
            self.person("qrls", *held)
        return held


def failed_attempts(state: dict[str, dict[str, Any]]) -> set[tuple[str, str]]:
    """``(exp_id, attempt)`` of the PBS attempts that carry a failure, and of failed entries."""
    out: set[tuple[str, str]] = set()
    for exp_id, entry in state.items():
        if entry.get("status") == "failed":
            out.add((exp_id, "entry"))
        for a in entry.get("attempts") or []:
            if a.get("target") in PBS_TARGETS and a.get("failure_class"):
                out.add((exp_id, str(a.get("n"))))
    return out


def final_violations(state: dict[str, dict[str, Any]], jobs: list[dict[str, Any]]) -> list[str]:
    """The batch invariants over the final state and the shim's every job."""
    out: list[str] = []
    by_key: dict[tuple[str, str], list[str]] = {}
    names: dict[str, str] = {}
    for job in jobs:
        names[job["id"]] = job["name"]
        key = job_key(job["name"])
        if key is None:
            out.append(f"batch: job {job['id']} has a name the reconciler does not give: {job['name']!r}")
            continue
        by_key.setdefault(key, []).append(job["id"])
    out += _overlaps(jobs)
    for (exp_id, attempt), ids in sorted(by_key.items()):
        if len(ids) > 1:
            out.append(f"batch invariant 1: {exp_id} attempt {attempt} was submitted {len(ids)} times: {ids}")
        recorded = {str(a.get("n")) for a in state.get(exp_id, {}).get("attempts") or []}
        if attempt not in recorded:
            out.append(f"batch invariant 1: job {ids} of {exp_id} attempt {attempt} is not recorded ({recorded})")
    for exp_id, entry in sorted(state.items()):
        for a in entry.get("attempts") or []:
            job_id = a.get("job_id")
            if a.get("target") not in PBS_TARGETS:
                if job_id:
                    out.append(f"batch: {exp_id} attempt {a.get('n')} on {a.get('target')} has job_id {job_id}")
                continue
            if a.get("failure_class"):
                ended = [j for j in jobs if job_key(j["name"]) == (exp_id, str(a.get("n"))) and j["state"] == "F"]
                if any(j.get("exit_status") == 0 for j in ended):
                    out.append(
                        f"batch: {exp_id} attempt {a.get('n')} failed ({a['failure_class']}) but its job "
                        f"{ended[0]['id']} completed with exit status 0"
                    )
            if not job_id:
                if entry.get("status") == "done" and a is (entry.get("attempts") or [None])[-1]:
                    out.append(f"batch: {exp_id} is done on {a.get('target')} but records no job id")
                continue
            if job_id not in names:
                out.append(f"batch: {exp_id} attempt {a.get('n')} records job {job_id}, unknown to the scheduler")
            elif job_key(names[job_id]) != (exp_id, str(a.get("n"))):
                out.append(f"batch: {exp_id} attempt {a.get('n')} records job {job_id} named {names[job_id]!r}")
        if entry.get("job_id") and entry["job_id"] not in names:
            out.append(f"batch: {exp_id} records job_id {entry['job_id']}, unknown to the scheduler")
    return out


def _overlaps(jobs: list[dict[str, Any]]) -> list[str]:
    """Two attempts of one experiment whose jobs ran at the same time: a relaunch while the
    earlier attempt was alive (invariant 1 in spirit: the experiment ran twice at once)."""
    spans: dict[str, list[tuple[float, float, str]]] = {}
    for job in jobs:
        key = job_key(job["name"])
        if key is None or job.get("stime") is None:
            continue
        end = float(job.get("obittime") or job["mtime"]) if job["state"] == "F" else float("inf")
        spans.setdefault(key[0], []).append((float(job["stime"]), end, f"{job['id']} (attempt {key[1]})"))
    out: list[str] = []
    for exp_id, runs in sorted(spans.items()):
        runs.sort()
        latest, latest_job = float("-inf"), ""
        for start, end, label in runs:
            if start < latest:
                out.append(f"batch invariant 1: {exp_id}: job {label} started while job {latest_job} still ran")
            if end > latest:
                latest, latest_job = end, label
    return out
