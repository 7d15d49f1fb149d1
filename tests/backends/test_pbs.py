"""The PBS adapter's pure parts: the job script (with the seed's own directive check), qsub/qselect
parsing, and qstat parsing on recorded real outputs (tests/data/pbs, sources in its README).
Fuzzed: whatever qstat prints, the parser returns jobs or raises SchedulerOutputError."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.backends.pbs import (
    ERR_MARK,
    JSON_MARK,
    RC_MARK,
    TEXT_MARK,
    Pbs,
    classify,
    parse_qstat_json,
    parse_qstat_text,
)
from reconciler.backends.scheduler import JobRequest, JobState
from reconciler.errors import InvalidTarget, PermanentError, SchedulerBusy, SchedulerOutputError, SubmitRejected
from reconciler.model.config import BatchOptions

DATA = Path(__file__).resolve().parents[1] / "data" / "pbs"
GADI = BatchOptions(
    queue="gpuvolta",
    account="ab12",
    storage="scratch/ab12+gdata/ab12",
    modules=("cuda/12.0", "python3/3.10.4"),
)


def request(options: BatchOptions = GADI, gpus: int = 1, name: str = "rc.proj.exp1_s0.1") -> JobRequest:
    return JobRequest(
        name=name,
        run_dir="/scratch/ab12/u/proj/runs/exp1_s0/1",
        wrapper="/scratch/ab12/u/proj/runs/exp1_s0/1/wrapper.sh",
        output="/scratch/ab12/u/proj/runs/exp1_s0/1/pbs.log",
        walltime_seconds=7 * 3600,
        gpus=gpus,
        options=options,
    )


def wrap(json_text: str | None = None, text: str | None = None, rc: int = 0, err: str = "") -> str:
    """What the status snippet prints around qstat's output."""
    lines = [JSON_MARK]
    if json_text is not None:
        lines.append(json_text)
    if text is not None:
        lines += [TEXT_MARK, text]
    lines.append(f"{RC_MARK} {rc}")
    lines += [f"{ERR_MARK} {line}" for line in err.splitlines()]
    return "\n".join(lines) + "\n"


# ---- job script ---------------------------------------------------------------------------------


def test_script_passes_the_seeds_directive_check(tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text(Pbs().job_script(request()))
    for pattern in ("#PBS -l walltime", "#PBS -l ncpus", "#PBS -l ngpus", "#PBS -l mem", "#PBS -l storage", "#PBS -P"):
        # exactly the seed's check (exec_gadi.md step 3): grep finds each directive
        assert subprocess.run(["grep", "-q", "--", pattern, str(script)], check=False).returncode == 0, pattern


def test_script_lines() -> None:
    lines = Pbs().job_script(request(gpus=2)).splitlines()
    assert lines[0] == "#!/bin/sh"
    assert "#PBS -N rc.proj.exp1_s0.1" in lines
    assert "#PBS -P ab12" in lines and "#PBS -q gpuvolta" in lines
    assert "#PBS -l walltime=07:00:00" in lines
    assert "#PBS -l ncpus=24" in lines  # gpuvolta: 12 CPUs per GPU
    assert "#PBS -l ngpus=2" in lines and "#PBS -l mem=64GB" in lines
    assert "#PBS -l storage=scratch/ab12+gdata/ab12" in lines
    assert "#PBS -j oe" in lines and "#PBS -o /scratch/ab12/u/proj/runs/exp1_s0/1/pbs.log" in lines
    assert lines.index("module load cuda/12.0") < lines.index("module load python3/3.10.4")
    assert lines[-1] == "exec /bin/sh /scratch/ab12/u/proj/runs/exp1_s0/1/wrapper.sh"


def test_cpu_rule_override_and_default() -> None:
    assert Pbs.cpus(request(BatchOptions(queue="gpuvolta", cpus_per_gpu=16), gpus=1)) == 16
    assert Pbs.cpus(request(BatchOptions(queue="normal"), gpus=2)) == 16
    assert Pbs.cpus(request(BatchOptions(), gpus=0)) == 8
    assert Pbs.mem(request(BatchOptions(mem_gb=1.5))) == "1536MB"


def test_select_style_and_extra_directives() -> None:
    opts = BatchOptions(queue="gpu", mem_gb=40, extra_directives=("-l place=excl", "#PBS -m n"))
    lines = Pbs(resources="select").job_script(request(opts)).splitlines()
    assert "#PBS -l select=1:ncpus=8:ngpus=1:mem=40GB" in lines
    assert "#PBS -l place=excl" in lines and "#PBS -m n" in lines
    assert not any(line.startswith("#PBS -P") for line in lines)  # no project configured


@pytest.mark.parametrize("bad", ["a b", "x\n#PBS -q evil", "$(rm)", "a;b"])
def test_directive_values_cannot_break_out(bad: str) -> None:
    with pytest.raises(PermanentError):
        Pbs().job_script(request(BatchOptions(account=bad)))
    with pytest.raises(PermanentError):
        Pbs().job_script(request(BatchOptions(extra_directives=("-l a=1\n-l b=2",))))


# ---- qsub, qselect, qdel ------------------------------------------------------------------------


def test_parse_submit_on_recorded_qsub() -> None:
    assert Pbs().parse_submit((DATA / "qsub_gadi.txt").read_text()) == "1234567.gadi-pbs"
    assert Pbs().parse_submit("12.pbs-test\n") == "12.pbs-test"


@pytest.mark.parametrize("out", ["", "qsub: Job exceeds queue resource limits", "hello world\n"])
def test_parse_submit_refuses_other_text(out: str) -> None:
    with pytest.raises(SchedulerOutputError):
        Pbs().parse_submit(out)


@pytest.mark.parametrize(
    "output",
    [
        "qsub: would exceed queue workq's per-user limit of jobs in 'Q' state",
        "qsub: Maximum number of jobs already in queue",
        "Connection refused\nqsub: cannot connect to server pbs01 (errno=15010)",
    ],
)
def test_a_qsub_that_cannot_take_the_job_now_is_busy(output: str) -> None:
    error = Pbs().submit_error(38, output)
    assert isinstance(error, SchedulerBusy) and output.splitlines()[-1] in str(error)


def test_a_qsub_rejection_and_a_missing_qsub() -> None:
    rejected = Pbs().submit_error(170, "qsub: Unknown queue")
    assert isinstance(rejected, SubmitRejected) and str(rejected) == "qsub rejected the job: qsub: Unknown queue"
    assert isinstance(Pbs().submit_error(127, "sh: 1: qsub: not found"), InvalidTarget)
    assert "qsub exited 1 with no message" in str(Pbs().submit_error(1, ""))


def test_find_and_cancel_commands() -> None:
    assert Pbs().find_command("rc.p.e.1") == "qselect -N rc.p.e.1 2>/dev/null; true"
    assert Pbs().parse_find("1.s\n2.s\n\ngarbage line\n") == ["1.s", "2.s"]
    assert "qdel 7.s" in Pbs().cancel_command("7.s")


def test_status_command_never_lists_the_whole_server(tmp_path: Path) -> None:
    qstat = tmp_path / "qstat"
    qstat.write_text('#!/bin/sh\necho "qstat called: $*" >&2\nexit 1\n')
    qstat.chmod(0o755)
    cmd = Pbs().status_command([], [])
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, env=env, check=True)
    assert "qstat called" not in out.stdout
    assert Pbs().parse_status(out.stdout) == {}


# ---- qstat parsing on recordings ----------------------------------------------------------------


def test_json_running_job() -> None:
    jobs = Pbs().parse_status(wrap((DATA / "qstat_xf_json_running.json").read_text()))
    job = jobs["12860476.meta-pbs.metacentrum.cz"]
    assert (job.state, job.raw_state, job.name, job.exit_status) == (JobState.RUNNING, "R", "swrap_01", None)


def test_json_held_job() -> None:
    [job] = parse_qstat_json((DATA / "qstat_xf_json_held.json").read_text()).values()
    assert (job.job_id, job.state, job.name) == ("157.pbs", JobState.HELD, "pbs_hold_job")


def test_json_polaris_queued_and_held_after_failed_launches() -> None:
    jobs = parse_qstat_json((DATA / "qstat_f_json_polaris_queued_held.json").read_text())
    queued = jobs["359322.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov"]
    held = jobs["412020.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov"]
    assert queued.state is JobState.QUEUED and queued.reason and "Not Running" in queued.reason
    assert held.state is JobState.HELD and held.exit_status == -3
    assert held.reason == "job held, too many failed attempts to run"


def test_json_finished_ok() -> None:
    [job] = parse_qstat_json((DATA / "qstat_xf_json_finished_psij.json").read_text()).values()
    assert (job.state, job.exit_status) == (JobState.COMPLETED, 0)


def test_text_records() -> None:
    jobs = parse_qstat_text((DATA / "qstat_f_text_aiida.txt").read_text())
    assert {k: v.state for k, v in jobs.items()} == {
        "68350.mycluster": JobState.QUEUED,
        "74164.mycluster": JobState.RUNNING,
        "74165.mycluster": JobState.HELD,
    }
    assert jobs["68350.mycluster"].name == "cell-Qnormal"
    assert jobs["74164.mycluster"].reason == "Job run at Mon Apr 22 at 07:17 on (b270:ncpus=16)+(b275:ncpus=16)"


def test_text_finished_exit_statuses() -> None:
    jobs = Pbs().parse_status(wrap(text=(DATA / "qstat_xf_text_finished_excerpts.txt").read_text()))
    assert jobs["13030457.meta-pbs.metacentrum.cz"].state is JobState.TIMEOUT
    assert jobs["13031539.meta-pbs.metacentrum.cz"].state is JobState.COMPLETED
    assert jobs["12345.gadi-pbs"].state is JobState.OUT_OF_MEMORY  # 271 + "job killed: vmem ..."
    assert jobs["160391.sophia-pbs-01"].state is JobState.CANCELLED  # deleted before it ran


def test_unknown_ids_are_not_an_error() -> None:
    err = (DATA / "qstat_stderr_unknown.txt").read_text()
    envelope = '{\n    "timestamp":1750053827,\n    "pbs_version":"22.05.11",\n    "pbs_server":"s"\n}'
    assert Pbs().parse_status(wrap(envelope, rc=153, err=err)) == {}
    running = (DATA / "qstat_xf_json_running.json").read_text()
    assert len(Pbs().parse_status(wrap(running, rc=153, err=err))) == 1


def test_server_down_is_an_error() -> None:
    err = "Connection refused\nqstat: cannot connect to server 6cfab3a0b8ac (errno=15010)"
    with pytest.raises(SchedulerOutputError):
        Pbs().parse_status(wrap(None, rc=255, err=err))


def test_garbage_is_an_error() -> None:
    for out in ("", "bash: qstat: command not found\n", wrap("{not json")):
        with pytest.raises(SchedulerOutputError):
            Pbs().parse_status(out)


@pytest.mark.parametrize(
    ("state", "exit_status", "comment", "expected"),
    [
        ("Q", None, None, JobState.QUEUED),
        ("W", None, None, JobState.QUEUED),
        ("T", None, None, JobState.QUEUED),
        ("H", None, None, JobState.HELD),
        ("R", None, None, JobState.RUNNING),
        ("E", None, None, JobState.RUNNING),
        ("B", None, None, JobState.RUNNING),
        ("S", None, None, JobState.RUNNING),
        ("F", 0, None, JobState.COMPLETED),
        ("X", 0, None, JobState.COMPLETED),
        ("F", 1, None, JobState.FAILED),
        ("F", -29, None, JobState.TIMEOUT),
        ("F", 271, "job killed: walltime 3611 exceeded limit 3600", JobState.TIMEOUT),
        ("F", -27, None, JobState.OUT_OF_MEMORY),
        ("F", -26, None, JobState.OUT_OF_MEMORY),
        ("F", -3, None, JobState.NODE_FAIL),
        ("F", -20, None, JobState.NODE_FAIL),
        ("F", -11, None, JobState.NODE_FAIL),
        ("F", -12, None, JobState.PREEMPTED),
        ("F", 265, "Job preempted", JobState.PREEMPTED),
        ("F", 271, None, JobState.CANCELLED),
        ("F", None, None, JobState.CANCELLED),
        ("F", 265, None, JobState.FAILED),
        ("F", -10, None, JobState.FAILED),
        ("Z", None, None, JobState.UNKNOWN),
    ],
)
def test_classify(state: str, exit_status: int | None, comment: str | None, expected: JobState) -> None:
    assert classify(state, exit_status, comment) is expected


# ---- fuzz ---------------------------------------------------------------------------------------

VALUES = st.none() | st.integers(-40, 300) | st.text(max_size=12) | st.sampled_from(["Q", "R", "F", "H", "X", ""])
JOB = st.dictionaries(st.sampled_from(["job_state", "Exit_status", "Job_Name", "comment", "x"]), VALUES, max_size=5)
DOCS = st.dictionaries(
    st.sampled_from(["Jobs", "timestamp", "pbs_version"]),
    st.dictionaries(st.text(max_size=6), JOB, max_size=3) | VALUES,
)
LINES = st.lists(
    st.sampled_from(["Job Id: 1.s", "    job_state = F", "    Exit_status = -29", "\tcontinued", "    comment = x", ""])
    | st.text(max_size=30),
    max_size=12,
).map("\n".join)


@settings(max_examples=300, deadline=None)
@given(
    doc=DOCS | st.text(max_size=40),
    text=LINES,
    rc=st.integers(-1, 300),
    err=st.text(max_size=40),
    which=st.integers(0, 3),
)
def test_parsers_never_raise_anything_else(doc: object, text: str, rc: int, err: str, which: int) -> None:
    json_text = doc if isinstance(doc, str) else json.dumps(doc)
    candidates = [wrap(json_text, rc=rc, err=err), wrap(None, text=text, rc=rc, err=err), text, json_text]
    try:
        jobs = Pbs().parse_status(candidates[which])
    except SchedulerOutputError:
        return
    for job_id, info in jobs.items():
        assert info.job_id == job_id and isinstance(info.state, JobState)
