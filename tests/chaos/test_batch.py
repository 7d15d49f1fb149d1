"""The batch parts of the chaos suite, fast: the seed-stable choice of batch scenarios, the batch
invariants on made-up states (so that a violation is known to be seen), and the shim's
``qstat_fail`` switch through the real shim and the PBS adapter's own status command."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler.backends.pbs import Pbs
from reconciler.errors import SchedulerOutputError
from tests.chaos import batch
from tests.chaos.scenarios import generate

SEED = 20261126


def test_batch_share_is_seed_stable_and_leaves_the_other_scenarios_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(batch.SHARE_ENV, "0")
    local = [generate(SEED, i) for i in range(40)]
    assert not any(s.batch for s in local)
    monkeypatch.setenv(batch.SHARE_ENV, "0.25")
    mixed = [generate(SEED, i) for i in range(40)]
    assert 0 < sum(s.batch for s in mixed) < 40
    for before, now in zip(local, mixed, strict=True):
        assert now.batch or now.describe() == before.describe()
    monkeypatch.setenv(batch.SHARE_ENV, "1")
    every = [generate(SEED, i) for i in range(40)]
    assert all(s.batch for s in every)
    for some, all_ in zip(mixed, every, strict=True):
        assert not some.batch or some.describe() == all_.describe()  # the same scenario at any share
    kinds = {step.kind for s in every for step in s.steps}
    assert set(batch.BATCH_FAULTS) <= kinds
    assert any(step.arg.startswith(batch.SUBMIT_POINT) for s in every for step in s.steps)


def _job(seq: int, name: str) -> dict[str, Any]:
    return {"id": f"{seq}.pbs-test", "seq": seq, "name": name, "state": "F"}


def _entry(*attempts: dict[str, Any], status: str = "done") -> dict[str, Any]:
    return {"status": status, "attempts": list(attempts), "job_id": attempts[-1].get("job_id")}


def test_final_violations_sees_each_batch_invariant() -> None:
    name = "rc.chaostest.e0_s0.1.abcd1234"
    good = {"e0_s0": _entry({"n": 1, "target": "pa", "job_id": "1.pbs-test"})}
    assert batch.final_violations(good, [_job(1, name)]) == []
    twice = batch.final_violations(good, [_job(1, name), _job(2, name)])
    assert any("submitted 2 times" in v for v in twice), twice
    unknown = {"e0_s0": _entry({"n": 1, "target": "pa", "job_id": "9.pbs-test"})}
    assert any("unknown to the scheduler" in v for v in batch.final_violations(unknown, [_job(1, name)]))
    other = {"e0_s0": _entry({"n": 2, "target": "pa", "job_id": "1.pbs-test"})}
    found = batch.final_violations(other, [_job(1, name)])
    assert any("named" in v for v in found) and any("not recorded" in v for v in found), found


def test_failed_attempts_counts_pbs_failures_and_failed_entries() -> None:
    state = {
        "e0_s0": _entry({"n": 1, "target": "pa", "failure_class": "node_fail"}, {"n": 2, "target": "pa"}),
        "e1_s0": _entry({"n": 1, "target": "ta", "failure_class": "oom"}),
        "e2_s0": _entry({"n": 1, "target": "pb"}, status="failed"),
    }
    assert batch.failed_attempts(state) == {("e0_s0", "1"), ("e2_s0", "entry")}


def test_qstat_fail_switch_makes_the_status_query_fail(tmp_path: Path) -> None:
    shim = batch.Shim(tmp_path / "pbs")
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\n#PBS -N rc.chaostest.e0_s0.1.abcd1234\ntrue\n")
    submitted = shim.person("qsub", str(script))
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    env = {**os.environ, **shim.env(), "PATH": f"{batch.SHIM}{os.pathsep}{os.environ['PATH']}"}
    command = Pbs().status_command([job_id], [])

    def query() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=60)

    assert job_id in Pbs().parse_status(query().stdout)
    shim.set_control(qstat_fail=True)
    refused = shim.person("qstat", "-x", "-f", "-F", "json", job_id)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr.startswith("Connection refused\nqstat: cannot connect to server pbs-test")
    with pytest.raises(SchedulerOutputError, match="Connection refused"):
        Pbs().parse_status(query().stdout)
    shim.set_control(qstat_fail=None)
    assert json.loads((tmp_path / "pbs" / "control.json").read_text()) == {}
    assert job_id in Pbs().parse_status(query().stdout)


def test_final_violations_sees_a_relaunch_while_the_earlier_job_ran() -> None:
    first = {**_job(1, "rc.chaostest.e0_s0.1.aaaa0000"), "stime": 10.0, "obittime": 20.0, "exit_status": 0}
    second = {**_job(2, "rc.chaostest.e0_s0.2.bbbb1111"), "stime": 15.0, "obittime": 25.0, "exit_status": 0}
    state = {
        "e0_s0": _entry(
            {"n": 1, "target": "pb", "failure_class": "lost"}, {"n": 2, "target": "pb", "job_id": "2.pbs-test"}
        )
    }
    found = batch.final_violations(state, [first, second])
    assert any("started while job 1.pbs-test (attempt 1) still ran" in v for v in found), found
    assert any("failed (lost) but its job 1.pbs-test completed with exit status 0" in v for v in found), found
    after = {**second, "stime": 21.0, "obittime": 30.0}
    assert not any("still ran" in v for v in batch.final_violations(state, [first, after]))
