"""The SLURM adapter's builders and parsers, on outputs recorded from a real SLURM 22.05
(``tests/data/slurm/``, see its README) and on edge cases. The shell text runs here only under
``sh -n`` (syntax) and against a fake ``PATH`` of tiny scripts where a tool's failure is the point;
``test_slurm_live.py`` runs it against the real cluster."""

from __future__ import annotations

import contextlib
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.backends.scheduler import JobInfo, JobRequest, JobState
from reconciler.backends.slurm import MARK, Slurm
from reconciler.errors import InvalidTarget, SchedulerBusy, SchedulerOutputError, SubmitRejected
from reconciler.model.config import BatchOptions

DATA = Path(__file__).parent.parent / "data" / "slurm"
SLURM = Slurm()


def data(name: str) -> str:
    return (DATA / name).read_text()


def request(**kw: object) -> JobRequest:
    fields: dict[str, object] = {
        "name": "rc.demo.A_s0.1",
        "run_dir": "/scratch/p/runs/A_s0/1",
        "wrapper": "/scratch/p/runs/A_s0/1/wrapper.sh",
        "output": "/scratch/p/runs/A_s0/1/slurm.out",
        "walltime_seconds": 5 * 3600,
        "gpus": 0,
    }
    fields.update(kw)
    return JobRequest(**fields)  # type: ignore[arg-type]


def directives(script: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH ")]


def sh_syntax_ok(text: str) -> None:
    done = subprocess.run(["sh", "-n"], input=text, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


# --- job script -------------------------------------------------------------------------------


def test_minimal_script_runs_the_wrapper_last() -> None:
    script = SLURM.job_script(request())
    assert script.startswith("#!/bin/sh\n")
    assert directives(script) == [
        "--job-name=rc.demo.A_s0.1",
        "--output=/scratch/p/runs/A_s0/1/slurm.out",
        "--open-mode=append",
        "--chdir=/scratch/p/runs/A_s0/1",
        "--time=05:00:00",
        "--no-requeue",
    ]
    assert script.rstrip("\n").splitlines()[-1] == "exec /bin/sh /scratch/p/runs/A_s0/1/wrapper.sh"
    assert "--gres" not in script and "module" not in script
    sh_syntax_ok(script)


def test_full_script_has_every_option_in_order() -> None:
    opts = BatchOptions(
        queue="gpu",
        account="ab12",
        qos="normal",
        cpus_per_gpu=12,
        mem_gb=7.5,
        modules=("cuda/12.1", "python/3.11"),
        extra_directives=("#SBATCH --constraint=a100", "--exclusive"),
    )
    script = SLURM.job_script(request(gpus=2, walltime_seconds=36 * 3600, options=opts))
    assert directives(script)[4:] == [
        "--time=36:00:00",  # hours past 24 are accepted (recorded: TimeLimit=1-12:00:00)
        "--no-requeue",
        "--gres=gpu:2",
        "--partition=gpu",
        "--account=ab12",
        "--qos=normal",
        "--cpus-per-task=24",
        "--mem=7680M",
        "--constraint=a100",
        "--exclusive",
    ]
    lines = script.splitlines()
    loads = [i for i, line in enumerate(lines) if line.startswith("module load")]
    assert [lines[i] for i in loads] == ["module load cuda/12.1", "module load python/3.11"]
    last_directive = max(i for i, line in enumerate(lines) if line.startswith("#SBATCH"))
    assert last_directive < loads[0] < loads[-1] < len(lines) - 1  # sbatch stops reading at the first command
    assert lines[-1].startswith("exec /bin/sh ")
    sh_syntax_ok(script)


def test_cpus_per_gpu_without_gpus_asks_for_one_gpus_worth() -> None:
    script = SLURM.job_script(request(options=BatchOptions(cpus_per_gpu=4)))
    assert "--cpus-per-task=4" in directives(script)


def test_short_walltime_is_at_least_a_minute() -> None:
    assert "--time=00:01:00" in directives(SLURM.job_script(request(walltime_seconds=60)))
    assert "--time=00:01:00" in directives(SLURM.job_script(request(walltime_seconds=0)))


def test_paths_with_blanks_and_percent_are_quoted_and_escaped() -> None:
    script = SLURM.job_script(
        request(run_dir="/s/a b%c", output="/s/a b%c/slurm.out", wrapper="/s/a b%c/wrapper.sh", name="rc.p.x.1")
    )
    found = directives(script)
    assert '--output="/s/a b%%c/slurm.out"' in found  # %% is a literal % in sbatch's filename patterns
    assert '--chdir="/s/a b%c"' in found  # --chdir takes no patterns
    assert script.splitlines()[-1] == "exec /bin/sh '/s/a b%c/wrapper.sh'"
    sh_syntax_ok(script)


@pytest.mark.parametrize(
    "change",
    [
        {"name": "a\nb"},
        {"output": '/s/"x"/out'},
        {"wrapper": "/s/w\n.sh"},
        {"options": BatchOptions(extra_directives=("#SBATCH --a\nrm -rf /",))},
        {"options": BatchOptions(modules=("cuda\n12",))},
        {"options": BatchOptions(queue="gpu\n#SBATCH --qos=x")},
    ],
)
def test_values_that_would_break_the_script_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(InvalidTarget):
        SLURM.job_script(request(**change))


def test_module_names_are_shell_quoted() -> None:
    script = SLURM.job_script(request(options=BatchOptions(modules=("x; rm -rf ~",))))
    assert "module load 'x; rm -rf ~'" in script
    sh_syntax_ok(script)


# --- submit -----------------------------------------------------------------------------------


def test_submit_command_and_recorded_answer() -> None:
    assert SLURM.submit_command("/s/p q/job.sh", request()) == "sbatch --parsable '/s/p q/job.sh'"
    assert SLURM.parse_submit(data("sbatch_parsable.txt")) == data("sbatch_parsable.txt").strip()


@pytest.mark.parametrize(
    ("stdout", "job_id"),
    [("123\n", "123"), ("123;cluster-a\n", "123"), ("  77  \n\n", "77"), ("warning: x\n4242\n", "4242")],
)
def test_parse_submit_forms(stdout: str, job_id: str) -> None:
    assert SLURM.parse_submit(stdout) == job_id


@pytest.mark.parametrize("stdout", ["", "\n", "Submitted batch job 12\n", "12abc", "12;bad cluster", "-1"])
def test_parse_submit_refuses_non_ids(stdout: str) -> None:
    with pytest.raises(SchedulerOutputError, match="sbatch printed no job id"):
        SLURM.parse_submit(stdout)


def test_submit_error_classes() -> None:
    down = data("sbatch_controller_down.txt").split("\n", 1)[1]
    assert isinstance(SLURM.submit_error(1, down), SchedulerBusy)
    limit = "sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed: Job violates"
    assert isinstance(SLURM.submit_error(1, limit), SchedulerBusy)
    bad = "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified"
    rejected = SLURM.submit_error(1, bad)
    assert isinstance(rejected, SubmitRejected) and "Invalid account" in str(rejected)
    assert isinstance(SLURM.submit_error(127, "sh: 1: sbatch: not found"), InvalidTarget)


# --- status: recorded outputs ------------------------------------------------------------------


def test_recorded_squeue_rows_map_to_states() -> None:
    framed = f"{MARK} begin squeue-ids\n{data('squeue_states.txt')}{MARK} exit 0\n{MARK} end\n"
    jobs = SLURM.parse_status(framed)
    by_name: dict[str, list[JobInfo]] = {}
    for info in jobs.values():
        by_name.setdefault(info.name or "", []).append(info)
    assert by_name["rc.demo.ok.1"][0].state is JobState.COMPLETED
    assert by_name["rc.demo.fail.1"][0].state is JobState.FAILED
    assert by_name["rc.demo.fail.1"][0].reason == "NonZeroExitCode"
    assert by_name["rc.demo.cancel.1"][0].state is JobState.CANCELLED
    assert by_name["rc.demo.run.1"][0].state is JobState.RUNNING
    assert by_name["rc.demo.later.1"][0].state is JobState.QUEUED
    assert by_name["rc.demo.later.1"][0].reason == "BeginTime"
    assert by_name["rc.demo.big.1"][0].state is JobState.QUEUED
    assert {i.state for i in by_name["rc.demo.held.1"]} == {JobState.HELD}
    assert all(i.raw_state in ("CANCELLED", "COMPLETED", "FAILED", "PENDING", "RUNNING") for i in jobs.values())


def test_recorded_status_of_every_state() -> None:
    jobs = SLURM.parse_status(data("status_mixed.txt"))
    states = {info.name: (info.state, info.exit_status) for info in jobs.values()}
    assert states == {
        "rc.demo.ok.1": (JobState.COMPLETED, 0),
        "rc.demo.fail.1": (JobState.FAILED, 3),
        "rc.demo.cancel.1": (JobState.CANCELLED, 128 + 15),
        "rc.demo.run.1": (JobState.RUNNING, None),
        "rc.demo.held.1": (JobState.HELD, None),
        "rc.demo.later.1": (JobState.QUEUED, None),
        "rc.demo.big.1": (JobState.QUEUED, None),
        "rc.demo.timeout.1": (JobState.RUNNING, None),
    }
    assert "999999" not in jobs  # unknown to slurmctld: absent, not an error


def test_recorded_status_asks_scontrol_only_for_jobs_squeue_did_not_show_live() -> None:
    text = data("status_mixed.txt")
    asked = set(re.findall(rf"^{MARK} begin scontrol (\S+)$", text, re.M))
    jobs = SLURM.parse_status(text)
    finished = {job_id for job_id, info in jobs.items() if info.state.finished}
    assert asked == finished | {"999999"}


def test_recorded_timeout() -> None:
    [info] = SLURM.parse_status(data("status_timeout.txt")).values()
    assert (info.state, info.raw_state, info.reason, info.exit_status) == (
        JobState.TIMEOUT,
        "TIMEOUT",
        "TimeLimit",
        143,
    )


def test_recorded_unknown_and_empty_are_not_errors() -> None:
    assert SLURM.parse_status(data("status_unknown.txt")) == {}
    assert SLURM.parse_status(data("status_empty.txt")) == {}


def test_recorded_controller_down_is_an_error_not_an_empty_queue() -> None:
    with pytest.raises(SchedulerOutputError, match=r"squeue failed \(exit 1\).*Unable to contact slurm controller"):
        SLURM.parse_status(data("status_controller_down.txt"))


def test_recorded_job_survives_a_controller_restart() -> None:
    [info] = SLURM.parse_status(data("status_after_restart.txt")).values()
    assert info.state is JobState.RUNNING and info.name == "rc.demo.run.1"


@pytest.mark.parametrize(
    ("name", "state", "raw", "exit_status", "reason"),
    [
        ("scontrol_completed.txt", JobState.COMPLETED, "COMPLETED", 0, None),
        ("scontrol_failed.txt", JobState.FAILED, "FAILED", 3, "NonZeroExitCode"),
        ("scontrol_cancelled.txt", JobState.CANCELLED, "CANCELLED", 143, None),
        ("scontrol_timeout.txt", JobState.TIMEOUT, "TIMEOUT", 143, "TimeLimit"),
        ("scontrol_held.txt", JobState.HELD, "PENDING", None, "JobHeldUser"),
        ("scontrol_running.txt", JobState.RUNNING, "RUNNING", None, None),
    ],
)
def test_recorded_scontrol_records(
    name: str, state: JobState, raw: str, exit_status: int | None, reason: str | None
) -> None:
    text = data(name)
    job_id = text.split()[0].removeprefix("JobId=")
    jobs = SLURM.parse_status(f"{MARK} begin scontrol {job_id}\n{text}{MARK} exit 0\n{MARK} end\n")
    info = jobs[job_id]
    assert (info.state, info.raw_state, info.exit_status, info.reason) == (state, raw, exit_status, reason)
    assert info.name is not None and info.name.startswith("rc.demo.")


def test_recorded_scontrol_invalid_id_is_unknown() -> None:
    framed = f"{MARK} begin scontrol 999999\n{data('scontrol_invalid.txt')}{MARK} exit 1\n{MARK} end\n"
    assert SLURM.parse_status(framed) == {}


def test_scontrol_failing_for_another_reason_is_an_error() -> None:
    framed = (
        f"{MARK} begin scontrol 5\nslurm_load_jobs error: Socket timed out on send/recv operation\n"
        f"{MARK} exit 1\n{MARK} end\n"
    )
    with pytest.raises(SchedulerOutputError, match="scontrol failed"):
        SLURM.parse_status(framed)


# --- status: sacct (documented rows) -----------------------------------------------------------


def with_sacct(rows: str, status: int = 0) -> str:
    return f"{MARK} begin squeue-ids\n{MARK} exit 0\n{MARK} begin sacct\n{rows}{MARK} exit {status}\n{MARK} end\n"


def test_documented_sacct_rows() -> None:
    jobs = SLURM.parse_status(with_sacct(data("sacct_documented.txt")))
    got = {job_id: (info.state, info.exit_status) for job_id, info in jobs.items()}
    assert got == {
        "4242": (JobState.COMPLETED, 0),
        "4243": (JobState.FAILED, 3),
        "4244": (JobState.CANCELLED, 143),
        "4245": (JobState.TIMEOUT, 143),
        "4246": (JobState.OUT_OF_MEMORY, 128 + 125),
        "4247": (JobState.NODE_FAIL, 0),
        "4248": (JobState.PREEMPTED, 143),
        "4249": (JobState.RUNNING, None),
        "4250": (JobState.QUEUED, None),
        "4251": (JobState.FAILED, 0),
        "4252": (JobState.FAILED, 0),
        "4253": (JobState.CANCELLED, 0),
    }
    assert jobs["4244"].raw_state == "CANCELLED by 0"  # the evidence keeps who cancelled
    assert jobs["4247"].reason == "NodeDown"


def test_recorded_sacct_disabled_is_ignored() -> None:
    assert SLURM.parse_status(with_sacct(data("sacct_disabled.txt"), status=1)) == {}


def test_sacct_name_with_a_pipe_and_step_rows() -> None:
    rows = "77|odd|name|COMPLETED|0:0|None\n77.batch|batch|COMPLETED|0:0|\n"
    jobs = SLURM.parse_status(with_sacct(rows))
    assert list(jobs) == ["77"] and jobs["77"].name == "odd|name"


def test_squeue_beats_sacct_and_scontrol_beats_both() -> None:
    text = (
        f"{MARK} begin squeue-ids\n9|RUNNING|None|rc.p.x.1\n{MARK} exit 0\n"
        f"{MARK} begin sacct\n9|rc.p.x.1|PENDING|0:0|Priority\n{MARK} exit 0\n"
        f"{MARK} begin scontrol 9\nJobId=9 JobName=rc.p.x.1 JobState=COMPLETED Reason=None ExitCode=0:0\n"
        f"{MARK} exit 0\n{MARK} end\n"
    )
    info = SLURM.parse_status(text)["9"]
    assert (info.state, info.exit_status, info.reason) == (JobState.COMPLETED, 0, "Priority")


# --- status: state table edge cases -----------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "reason", "expected"),
    [
        ("PENDING", "Priority", JobState.QUEUED),
        ("PENDING", "JobHeldAdmin", JobState.HELD),
        ("PENDING", "launch failed requeued held", JobState.HELD),
        ("CONFIGURING", "None", JobState.QUEUED),
        ("REQUEUED", "None", JobState.QUEUED),
        ("COMPLETING", "None", JobState.RUNNING),
        ("SUSPENDED", "None", JobState.RUNNING),
        ("NODE_FAIL", "NodeDown", JobState.NODE_FAIL),
        ("PREEMPTED", "None", JobState.PREEMPTED),
        ("OUT_OF_MEMORY", "None", JobState.OUT_OF_MEMORY),
        ("BOOT_FAIL", "None", JobState.FAILED),
        ("DEADLINE", "None", JobState.FAILED),
        ("CANCELLED+", "None", JobState.CANCELLED),
        ("PD", "None", JobState.QUEUED),
        ("CA", "None", JobState.CANCELLED),
        ("SOME_NEW_STATE", "None", JobState.UNKNOWN),
    ],
)
def test_state_table(state: str, reason: str, expected: JobState) -> None:
    text = f"{MARK} begin squeue-ids\n5|{state}|{reason}|n\n{MARK} exit 0\n{MARK} end\n"
    assert SLURM.parse_status(text)["5"].state is expected


def test_job_name_may_hold_the_delimiter() -> None:
    text = f"{MARK} begin squeue-names\n5|RUNNING|None|a|b|c\n{MARK} exit 0\n{MARK} end\n"
    assert SLURM.parse_status(text)["5"].name == "a|b|c"


def test_probe_lines_before_the_status_are_not_read() -> None:
    text = '{"probe": 1}\nmore probe text\n' + data("status_after_restart.txt")
    assert list(SLURM.parse_status(text)) == ["5"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "cut short"),
        (f"{MARK} begin squeue-ids\n5|RUNNING|None|n\n", "cut short"),
        (f"{MARK} begin squeue-ids\n5|RUNNING|None|n\n{MARK} exit 0\n", "cut short"),
        (f"{MARK} begin squeue-ids\ngarbage\n{MARK} exit 0\n{MARK} end\n", "not a job"),
        (f"{MARK} begin squeue-ids\n5|running|None|n\n{MARK} exit 0\n{MARK} end\n", "not a SLURM state"),
        (f"{MARK} begin squeue-ids\nsh: 1: squeue: not found\n{MARK} exit 127\n{MARK} end\n", "exit 127"),
        (f"{MARK} begin sacct\n1|n|COMPLETED|zero|None\n{MARK} exit 0\n{MARK} end\n", "rc:signal"),
        (f"{MARK} begin sacct\nnonsense\n{MARK} exit 0\n{MARK} end\n", "not a job"),
        (f"{MARK} begin scontrol 5\nJobName=x\n{MARK} exit 0\n{MARK} end\n", "not a job"),
        (f"{MARK} begin scontrol 5\nJobId=5 JobName=x\n{MARK} exit 0\n{MARK} end\n", "without id or state"),
        (f"{MARK} begin nonsense\n{MARK} exit 0\n{MARK} end\n", "unknown section"),
        (f"{MARK} exit 0\n{MARK} end\n", "unexpected marker"),
        (f"{MARK} end\n{MARK} begin squeue-ids\n{MARK} exit 0\n", "unexpected marker"),
    ],
)
def test_odd_status_output_is_a_scheduler_output_error(text: str, message: str) -> None:
    with pytest.raises(SchedulerOutputError, match=message):
        SLURM.parse_status(text)


ALPHABET = st.sampled_from(
    [
        f"{MARK} begin squeue-ids\n",
        f"{MARK} begin squeue-names\n",
        f"{MARK} begin sacct\n",
        f"{MARK} begin scontrol 5\n",
        f"{MARK} exit 0\n",
        f"{MARK} exit 1\n",
        f"{MARK} exit ²\n",
        f"{MARK} end\n",
        "5|RUNNING|None|rc.p.x.1\n",
        "5|PENDING|JobHeldUser|n\n",
        "7|rc.p.y.1|CANCELLED by 0|0:15|None\n",
        "JobId=5 JobName=n JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15\n",
        "slurm_load_jobs error: Invalid job id specified\n",
        "Slurm accounting storage is disabled\n",
        "|", ":", "=", " ", "\n", "\r\n", "JobId=", "5", "x", "\x00", "é",
    ]
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(pieces=st.lists(ALPHABET | st.text(max_size=20), max_size=30))
def test_parse_status_fuzz_never_a_traceback(pieces: list[str]) -> None:
    text = "".join(pieces)
    try:
        jobs = SLURM.parse_status(text)
    except SchedulerOutputError:
        return
    for job_id, info in jobs.items():
        assert isinstance(info, JobInfo) and info.job_id == job_id
        assert isinstance(info.state, JobState)
        assert info.exit_status is None or isinstance(info.exit_status, int)


@settings(max_examples=200, deadline=None)
@given(
    recorded=st.sampled_from(sorted(p.name for p in DATA.glob("status_*.txt"))),
    cut=st.integers(min_value=0, max_value=5000),
    noise=st.text(max_size=30),
)
def test_parse_status_fuzz_on_damaged_recordings(recorded: str, cut: int, noise: str) -> None:
    text = data(recorded)
    damaged = text[:cut] + noise + text[cut:]
    with contextlib.suppress(SchedulerOutputError):
        SLURM.parse_status(damaged)
    with contextlib.suppress(SchedulerOutputError):
        SLURM.parse_status(text[:cut])


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=80))
def test_parse_find_and_submit_fuzz(text: str) -> None:
    for parse in (SLURM.parse_find, SLURM.parse_submit):
        with contextlib.suppress(SchedulerOutputError):
            parse(text)


# --- status command text ----------------------------------------------------------------------


def test_status_command_is_valid_sh_and_quotes_names() -> None:
    command = SLURM.status_command(["12", "3", "12"], ["rc.p.x.1", "it's; rm -rf ~"])
    sh_syntax_ok(command)
    assert "-j 3,12 " in command  # sorted, deduplicated
    assert '-u "$(id -un)" --name=' in command  # names are looked up among this user's jobs only
    assert "--name='it'\"'\"'s; rm -rf ~,rc.p.x.1'" in command
    assert command.rstrip().endswith(")")
    sh_syntax_ok(SLURM.status_command([], []))


def test_status_command_refuses_ids_that_are_not_slurm_ids() -> None:
    with pytest.raises(InvalidTarget):
        SLURM.status_command(["12; rm -rf ~"], [])
    with pytest.raises(InvalidTarget):
        SLURM.cancel_command("$(id)")


def fake_path(tmp_path: Path, tools: dict[str, str]) -> dict[str, str]:
    """A ``PATH`` holding only tiny stand-ins for SLURM's tools (each prints and exits as told)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in tools.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def run(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, check=False, timeout=30)


DOWN = 'echo "slurm_load_jobs error: Unable to contact slurm controller (connect failure)" >&2; exit 1'


def test_status_command_stops_asking_when_the_controller_is_down(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    env = fake_path(
        tmp_path,
        {
            "squeue": f"echo squeue >> {calls}; {DOWN}",
            "sacct": f"echo sacct >> {calls}; exit 1",
            "scontrol": f"echo scontrol >> {calls}; exit 1",
        },
    )
    done = run(SLURM.status_command(["1", "2"], ["rc.p.x.1"]), env)
    assert done.returncode == 0
    assert calls.read_text() == "squeue\n"
    with pytest.raises(SchedulerOutputError, match="Unable to contact"):
        SLURM.parse_status(done.stdout)


def test_status_command_with_an_old_squeue_that_refuses_unknown_ids(tmp_path: Path) -> None:
    """SLURM before 20.11 exits 1 with "Invalid job id specified" when an id is unknown; then
    scontrol is asked about each id."""
    env = fake_path(
        tmp_path,
        {
            "squeue": 'echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1',
            "sacct": 'echo "Slurm accounting storage is disabled" >&2; exit 1',
            "scontrol": 'if [ "$4" = 2 ]; then echo "JobId=2 JobName=n JobState=RUNNING Reason=None ExitCode=0:0"; '
            'else echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1; fi',
        },
    )
    done = run(SLURM.status_command(["1", "2"], []), env)
    assert done.returncode == 0
    jobs = SLURM.parse_status(done.stdout)
    assert list(jobs) == ["2"] and jobs["2"].state is JobState.RUNNING


def test_status_command_under_other_shells(tmp_path: Path) -> None:
    env = fake_path(
        tmp_path,
        {
            "squeue": 'echo "5|RUNNING|None|rc.p.x.1"; echo "6|COMPLETED|None|rc.p.y.1"',
            "sacct": 'echo "Slurm accounting storage is disabled" >&2; exit 1',
            "scontrol": 'echo "JobId=$4 JobName=rc.p.y.1 JobState=COMPLETED Reason=None ExitCode=2:0"',
        },
    )
    command = SLURM.status_command(["5", "6"], ["rc.p.x.1"])
    for shell in ("sh", "bash", "dash", "busybox"):
        argv = ["busybox", "sh", "-c", command] if shell == "busybox" else [shell, "-c", command]
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=30)
        except FileNotFoundError:
            continue
        assert done.returncode == 0, (shell, done.stderr)
        jobs = SLURM.parse_status(done.stdout)
        assert (jobs["5"].state, jobs["6"].state, jobs["6"].exit_status) == (
            JobState.RUNNING,
            JobState.COMPLETED,
            2,
        ), shell
        assert done.stdout.count(f"{MARK} begin scontrol") == 1, shell  # only for the finished job


# --- cancel and find --------------------------------------------------------------------------


def test_recorded_cancel_outputs() -> None:
    assert data("cancel_gone.txt") == "# exit 0\n"
    assert data("cancel_controller_down.txt").startswith("# exit 8\n")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("exit 0", 0),
        ('echo "scancel: error: Kill job error on job id 5: Invalid job id specified" >&2; exit 1', 0),
        ('echo "scancel: error: Kill job error on job id 5: Job/step already completing or completed" >&2; exit 1', 0),
        ('echo "scancel: error: Kill job error on job id 5: Unable to contact slurm controller" >&2; exit 1', 1),
        ('echo "scancel: error: Kill job error on job id 5: Access/permission denied" >&2; exit 1', 1),
    ],
)
def test_cancel_command_is_quiet_about_gone_jobs_only(tmp_path: Path, body: str, status: int) -> None:
    done = run(SLURM.cancel_command("5"), fake_path(tmp_path, {"scancel": body}))
    assert done.returncode == status
    if "echo" in body:
        assert "scancel: error" in done.stderr  # the message is passed on either way


def test_recorded_find_outputs() -> None:
    assert SLURM.parse_find(data("find_live.txt")) == ["5"]
    assert SLURM.parse_find(data("find_none.txt")) == []
    with pytest.raises(SchedulerOutputError, match="did not answer"):
        SLURM.parse_find(data("find_controller_down.txt"))


def test_find_command_quotes_the_name() -> None:
    assert SLURM.find_command("rc.p.x.1") == (
        f"squeue -h -a -t all -u \"$(id -un)\" --name=rc.p.x.1 -o %i && echo '{MARK} end'"
    )
    assert "--name='a b'" in SLURM.find_command("a b")


@pytest.mark.parametrize("stdout", ["5\n5\n6\n" + f"{MARK} end\n", f"5\n\n6\n{MARK} end\n"])
def test_parse_find_deduplicates(stdout: str) -> None:
    assert SLURM.parse_find(stdout) == ["5", "6"]


@pytest.mark.parametrize("stdout", ["", "5\n", f"x\n{MARK} end\n", f"{MARK} end\n5\n"])
def test_parse_find_refuses_odd_output(stdout: str) -> None:
    with pytest.raises(SchedulerOutputError):
        SLURM.parse_find(stdout)
