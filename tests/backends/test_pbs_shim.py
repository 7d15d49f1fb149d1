"""The PBS adapter's commands run through ``sh`` against the project's PBS shim (tests/shims/pbs),
which really runs the jobs: submit, Q -> R -> F, walltime kill, qdel, hold, node failure,
preemption, the text fallback, and the shim's output checked against the recorded real outputs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from reconciler.backends.batch import BatchRunner
from reconciler.backends.local import LocalTransport
from reconciler.backends.pbs import Pbs, parse_qstat_json, parse_qstat_text
from reconciler.backends.scheduler import JobInfo, JobRequest, JobState
from reconciler.model.config import BatchOptions, Target, TargetKind

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

SHIM = Path(__file__).resolve().parents[1] / "shims" / "pbs"
DATA = Path(__file__).resolve().parents[1] / "data" / "pbs"
PBS = Pbs()


class Cluster:
    """The shim's queue in a temp dir, and helpers to drive the adapter's commands through sh."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = dict(os.environ, PBS_SHIM_DIR=str(root / "pbs"), PATH=f"{SHIM}:{os.environ['PATH']}")

    def sh(self, command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=self.env, cwd=cwd, timeout=60)

    def control(self, **settings: Any) -> None:
        (self.root / "pbs").mkdir(exist_ok=True)
        (self.root / "pbs" / "control.json").write_text(json.dumps(settings))

    def submit(self, body: str, name: str = "rc.proj.exp.1", walltime: int = 600) -> tuple[str, JobRequest]:
        run_dir = self.root / "runs" / name
        run_dir.mkdir(parents=True)
        (run_dir / "wrapper.sh").write_text(body)
        req = JobRequest(
            name=name,
            run_dir=str(run_dir),
            wrapper=str(run_dir / "wrapper.sh"),
            output=str(run_dir / "pbs.log"),
            walltime_seconds=walltime,
            gpus=0,
            options=BatchOptions(queue="workq", account="proj"),
        )
        (run_dir / "job.sh").write_text(PBS.job_script(req))
        done = self.sh(PBS.submit_command(str(run_dir / "job.sh"), req))
        assert done.returncode == 0, done.stderr
        return PBS.parse_submit(done.stdout), req

    def status(self, ids: list[str], names: tuple[str, ...] = ()) -> Mapping[str, JobInfo]:
        done = self.sh(PBS.status_command(ids, names))
        assert done.returncode == 0, done.stderr
        return PBS.parse_status(done.stdout)

    def wait(self, job_id: str, until: Any = lambda s: s.finished, timeout: float = 30.0) -> JobInfo:
        end = time.monotonic() + timeout
        while True:
            info = self.status([job_id]).get(job_id)
            if info is not None and until(info.state):
                return info
            assert time.monotonic() < end, f"{job_id} stuck in {info}"
            time.sleep(0.1)

    def jobs(self) -> dict[str, Any]:
        return dict(json.loads((self.root / "pbs" / "jobs.json").read_text())["jobs"])


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    with contextlib.suppress(OSError, ValueError):
        for job in c.jobs().values():  # stop what the test left running, by its own ids
            for pid in (job.get("pgid"), job.get("runner")):
                if pid:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)


def test_submit_queue_run_finish(cluster: Cluster) -> None:
    cluster.control(queue_delay=1.0)
    job_id, req = cluster.submit('echo "id=$PBS_JOBID name=$PBS_JOBNAME wd=$PBS_O_WORKDIR"; echo oops >&2\n')
    assert job_id.endswith(".pbs-test")
    first = cluster.status([job_id])[job_id]
    assert (first.state, first.raw_state, first.name) == (JobState.QUEUED, "Q", "rc.proj.exp.1")
    cluster.wait(job_id, lambda s: s is not JobState.QUEUED)
    done = cluster.wait(job_id)
    assert (done.state, done.raw_state, done.exit_status) == (JobState.COMPLETED, "F", 0)
    log = Path(req.output).read_text()
    assert f"id={job_id} name=rc.proj.exp.1 wd={req.run_dir}" in log
    assert "oops" in log  # -j oe: stderr joined into -o


def test_exit_status_of_the_script(cluster: Cluster) -> None:
    job_id, _ = cluster.submit("exit 3\n")
    assert (cluster.wait(job_id).state, cluster.wait(job_id).exit_status) == (JobState.FAILED, 3)


def test_walltime_kill(cluster: Cluster) -> None:
    job_id, req = cluster.submit("echo started; sleep 60\n", walltime=1)
    info = cluster.wait(job_id)
    assert (info.state, info.exit_status) == (JobState.TIMEOUT, -29)
    assert info.reason and info.reason.startswith("job killed: walltime")
    assert "=>> PBS: job killed: walltime" in Path(req.output).read_text()


def test_qdel_running_then_again_then_unknown(cluster: Cluster) -> None:
    job_id, _ = cluster.submit(f"echo $$ > {Path(cluster.root, 'pid')}; sleep 60\n")
    cluster.wait(job_id, lambda s: s is JobState.RUNNING)
    pid_file = cluster.root / "pid"
    end = time.monotonic() + 20
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < end
        time.sleep(0.05)
    assert cluster.sh(PBS.cancel_command(job_id)).returncode == 0
    info = cluster.wait(job_id)
    assert (info.state, info.exit_status) == (JobState.CANCELLED, 271)
    pid = int(pid_file.read_text())
    end = time.monotonic() + 20
    while Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] not in "ZX":
        assert time.monotonic() < end, "the job's process outlived qdel"
        time.sleep(0.05)
    assert cluster.sh(PBS.cancel_command(job_id)).returncode == 0  # already finished
    assert cluster.sh(PBS.cancel_command("999.pbs-test")).returncode == 0  # never known


def test_qdel_queued_job(cluster: Cluster) -> None:
    cluster.control(queue_delay=30)
    job_id, _ = cluster.submit("sleep 60\n")
    assert cluster.sh(PBS.cancel_command(job_id)).returncode == 0
    info = cluster.status([job_id])[job_id]
    assert (info.state, info.exit_status) == (JobState.CANCELLED, None)


def test_held_job_found_by_name_then_released(cluster: Cluster) -> None:
    cluster.control(hold=["rc.proj.*"])
    job_id, _ = cluster.submit("true\n", name="rc.proj.held.1")
    assert cluster.status([job_id])[job_id].state is JobState.HELD
    found = cluster.sh(PBS.find_command("rc.proj.held.1"))
    assert PBS.parse_find(found.stdout) == [job_id]
    by_name = cluster.status([], ("rc.proj.held.1",))  # status of a job known only by its name
    assert by_name[job_id].state is JobState.HELD
    cluster.control()
    assert cluster.sh(f"qrls {job_id}").returncode == 0
    assert cluster.wait(job_id).state is JobState.COMPLETED
    assert PBS.parse_find(cluster.sh(PBS.find_command("rc.proj.held.1")).stdout) == []  # live jobs only


def test_node_failure(cluster: Cluster) -> None:
    cluster.control(node_fail=["rc.*"])
    job_id, _ = cluster.submit("true\n")
    info = cluster.wait(job_id)
    assert (info.state, info.exit_status) == (JobState.NODE_FAIL, -20)


def test_preemption(cluster: Cluster) -> None:
    cluster.control(preempt=["rc.*"], preempt_after=0.2)
    job_id, _ = cluster.submit("sleep 60\n")
    assert cluster.wait(job_id).state is JobState.PREEMPTED


def test_text_fallback_when_json_is_not_supported(cluster: Cluster) -> None:
    job_id, _ = cluster.submit("exit 0\n")
    cluster.wait(job_id)
    cluster.control(no_json=True)
    out = cluster.sh(PBS.status_command([job_id, "404.pbs-test"], ())).stdout
    assert "@@pbs-text@@" in out
    info = PBS.parse_status(out)[job_id]
    assert (info.state, info.exit_status) == (JobState.COMPLETED, 0)


def test_unknown_and_finished_ids_are_not_errors(cluster: Cluster) -> None:
    assert cluster.status(["77.pbs-test", "78.pbs-test"]) == {}
    plain = cluster.sh("qstat -f 77.pbs-test")
    assert plain.returncode == 153 and "qstat: Unknown Job Id 77.pbs-test" in plain.stderr


def test_finished_jobs_need_x(cluster: Cluster) -> None:
    job_id, _ = cluster.submit("true\n")
    cluster.wait(job_id)
    plain = cluster.sh(f"qstat -f -F json {job_id}")
    assert plain.returncode == 35 and "Job has finished, use -x" in plain.stderr
    assert "Jobs" not in json.loads(plain.stdout)


def test_concurrent_submits_get_distinct_ids(cluster: Cluster) -> None:
    (cluster.root / "job.sh").write_text("#!/bin/sh\ntrue\n")
    with ThreadPoolExecutor(6) as pool:
        outs = list(pool.map(lambda i: cluster.sh(f"qsub -N n{i} job.sh", cwd=cluster.root), range(12)))
    ids = [PBS.parse_submit(o.stdout) for o in outs]
    assert len(set(ids)) == 12


# ---- the shim's output against the recorded real output -----------------------------------------


def _real_json_jobs() -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    for path in sorted(DATA.glob("*.json")):
        jobs += json.loads(path.read_text()).get("Jobs", {}).values()
    return jobs


def _text_keys(path: Path) -> list[list[str]]:
    records: list[list[str]] = []
    for line in path.read_text().splitlines():
        if line.startswith("Job Id:"):
            records.append([])
        elif line.startswith("    ") and " = " in line:
            key = line.strip().split(" = ")[0].split(".")[0]
            if key not in records[-1]:
                records[-1].append(key)
    return records


def _same_order(keys: list[str], reference: list[str]) -> bool:
    common = [k for k in keys if k in reference]
    return common == [k for k in reference if k in common]


def test_shim_json_has_the_structure_of_real_json(cluster: Cluster) -> None:
    finished, _ = cluster.submit("true\n", name="rc.proj.done.1")
    cluster.wait(finished)
    cluster.control(queue_delay=30)
    queued, _ = cluster.submit("true\n", name="rc.proj.queued.1")
    doc = json.loads(cluster.sh(f"qstat -x -f -F json {finished} {queued}").stdout)
    real_docs = [json.loads(p.read_text()) for p in sorted(DATA.glob("*.json"))]
    assert set(doc) <= {k for d in real_docs for k in d} and list(doc)[-1] == "Jobs"
    real_jobs = _real_json_jobs()
    real_types: dict[str, set[type]] = {}
    for job in real_jobs:
        for key, value in job.items():
            real_types.setdefault(key, set()).add(type(value))
    text_records = _text_keys(DATA / "qstat_f_text_aiida.txt")
    known = set(real_types) | {k for r in text_records for k in r}
    for attrs in doc["Jobs"].values():
        assert set(attrs) <= known, set(attrs) - known
        for key, value in attrs.items():
            if key in real_types:
                assert type(value) in real_types[key], (key, value)
        for nested in ("Resource_List", "Variable_List", "resources_used"):
            if nested in attrs:
                assert isinstance(attrs[nested], dict)
        for key, value in attrs.get("Resource_List", {}).items():
            real = [j["Resource_List"][key] for j in real_jobs if key in j.get("Resource_List", {})]
            assert all(type(value) is type(r) for r in real), (key, value, real)
        for reference in [list(j) for j in real_jobs] + text_records:
            assert _same_order(list(attrs), reference), (list(attrs), reference)


def test_shim_text_is_parsed_like_its_json(cluster: Cluster) -> None:
    ids = []
    for i, body in enumerate(["true\n", "exit 4\n"]):
        ids.append(cluster.submit(body, name=f"rc.proj.t{i}.1")[0])
    for job_id in ids:
        cluster.wait(job_id)
    as_json = parse_qstat_json(cluster.sh(f"qstat -x -f -F json {' '.join(ids)}").stdout)
    text = cluster.sh(f"qstat -x -f {' '.join(ids)}").stdout
    assert parse_qstat_text(text) == as_json
    assert all(len(line.expandtabs(8)) <= 79 for line in text.splitlines())
    assert [i.exit_status for i in as_json.values()] == [0, 4]


@pytest.mark.parametrize("cut", [0, 1, 40])
def test_a_job_script_cut_short_is_never_submitted(cluster: Cluster, cut: int) -> None:
    """A controller that dies while sending ``job.sh`` closes its stdin early: the submit command
    sees fewer bytes than announced, writes no ``job.sh``, submits nothing and exits 1; the whole
    script is submitted."""
    target = Target("hpc", TargetKind.PBS, str(cluster.root / "runs"))
    runner = BatchRunner(target, LocalTransport(), None, "proj", PBS)
    run_dir = cluster.root / "runs" / "cut"
    run_dir.mkdir(parents=True)
    (run_dir / "wrapper.sh").write_text("echo ran\n")
    req = JobRequest(
        name="rc.proj.cut.1", run_dir=str(run_dir), wrapper=str(run_dir / "wrapper.sh"),
        output=str(run_dir / "pbs.log"), walltime_seconds=60, gpus=0, options=BatchOptions(),
    )  # fmt: skip
    data = PBS.job_script(req).encode()
    command = runner.submit_script(req, len(data))
    env = cluster.env
    cut_short = subprocess.run(["sh", "-c", command], input=data[:cut], capture_output=True, env=env, timeout=60)
    assert cut_short.returncode == 1 and b"incomplete input" in cut_short.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == ["wrapper.sh"]
    assert cluster.status([], ("rc.proj.cut.1",)) == {}
    whole = subprocess.run(["sh", "-c", command], input=data, capture_output=True, env=env, timeout=60)
    assert whole.returncode == 0, whole.stderr
    assert (run_dir / "job.sh").read_bytes() == data
    job_id = PBS.parse_submit(whole.stdout.decode().split("@@submit@@\n")[-1])
    assert cluster.wait(job_id).exit_status == 0
