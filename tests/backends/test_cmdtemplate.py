"""The command-template adapter: builders and parsers, and the C500-shaped mapping driven through
``sh`` against a tiny platform CLI that really runs jobs (tests/shims/cmdplatform/acp)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.backends.cmdtemplate import FIND_MARK, JOB_MARK, RC_MARK, CommandTemplate
from reconciler.backends.scheduler import JobInfo, JobRequest, JobState
from reconciler.errors import InvalidTarget, SchedulerBusy, SchedulerOutputError, SubmitRejected
from reconciler.model.config import BatchOptions, CommandTemplates

SHIM = Path(__file__).resolve().parents[1] / "shims" / "cmdplatform"
STATES = (
    ("Completed", "completed"),
    ("Failed", "failed"),
    ("Pending", "queued"),
    ("Running", "running"),
    ("Stopped", "cancelled"),
)
ACP = CommandTemplates(
    submit="acp jobs create --workspace-name ws --name {name} -- /bin/sh {script}",
    status="acp jobs describe {job_id}",
    cancel="acp jobs stop {job_id} || true",
    find="acp jobs list --name {name}",
    job_id_regex=r"pt-[a-z0-9]+",
    state_regex=r"^state: (\w+)",
    states=STATES,
)


def request(run_dir: Path, name: str = "rc.proj.exp1_s0.1") -> JobRequest:
    return JobRequest(
        name=name,
        run_dir=str(run_dir),
        wrapper=str(run_dir / "wrapper.sh"),
        output=str(run_dir / "out.log"),
        walltime_seconds=3600,
        gpus=1,
        options=BatchOptions(modules=("cuda/12.1",)),
    )


def test_builders_quote_every_value(tmp_path: Path) -> None:
    sched = CommandTemplate(ACP)
    req = request(tmp_path / "run dir")
    cmd = sched.submit_command(str(tmp_path / "run dir" / "job.sh"), req)
    assert f"-- /bin/sh '{tmp_path}/run dir/job.sh'" in cmd
    assert sched.cancel_command("pt-1; rm -rf /") == "acp jobs stop 'pt-1; rm -rf /' || true"
    assert sched.find_command("a b") == "acp jobs list --name 'a b'"
    script = sched.job_script(req).splitlines()
    assert script == ["#!/bin/sh", "module load cuda/12.1", f"exec /bin/sh '{tmp_path}/run dir/wrapper.sh'"]
    no_find = CommandTemplate(CommandTemplates(submit="s", status="t {job}", cancel="c {job_id}"))
    assert no_find.find_command("x") == "true" and no_find.parse_find("") == []
    assert no_find.status_one("7") == "t 7"


@pytest.mark.parametrize(
    "templates",
    [
        CommandTemplates(submit="s {nope}", status="t", cancel="c"),
        CommandTemplates(submit="s {", status="t", cancel="c"),
        CommandTemplates(submit="s", status="t {name}", cancel="c"),
        CommandTemplates(submit="s", status="t", cancel="c", job_id_regex="(unclosed"),
        CommandTemplates(submit="s", status="t", cancel="c", states=(("Up", "flying"),)),
    ],
)
def test_bad_templates_are_invalid_targets(templates: CommandTemplates) -> None:
    with pytest.raises(InvalidTarget):
        CommandTemplate(templates)


def test_parse_submit_and_find() -> None:
    sched = CommandTemplate(ACP)
    assert sched.parse_submit("Job created successfully.\njob_id: pt-0007x\n") == "pt-0007x"
    with pytest.raises(SchedulerOutputError):
        sched.parse_submit("Error: quota exceeded\n")
    whole = CommandTemplate(CommandTemplates(submit="s", status="t", cancel="c", job_id_regex=r"pt-[a-z0-9]+"))
    assert whole.parse_submit("created pt-abc1 ok") == "pt-abc1"
    assert whole.parse_find("pt-a\npt-b\npt-a\n") == ["pt-a", "pt-b"]


def test_submit_errors_wait_on_not_now_words_and_name_the_tool() -> None:
    sched = CommandTemplate(ACP)
    busy = sched.submit_error(1, "Error: service temporarily unavailable, try again later")
    assert isinstance(busy, SchedulerBusy) and str(busy).startswith("acp cannot take the job now: ")
    rejected = sched.submit_error(2, "Error: workspace ws not found in this region")
    assert isinstance(rejected, SubmitRejected) and str(rejected).startswith("acp rejected the job: ")
    assert isinstance(sched.submit_error(127, "sh: 1: acp: not found"), InvalidTarget)


def test_parse_status_blocks() -> None:
    sched = CommandTemplate(ACP)
    out = "\n".join(
        [
            f"{JOB_MARK} pt-1",
            "job_id: pt-1",
            "state: Running",
            f"{RC_MARK} 0",
            f"{JOB_MARK} pt-2",
            "state: SUCCEEDED",
            f"{RC_MARK} 0",
            f"{JOB_MARK} pt-3",
            "Error: job pt-3 not found",
            f"{RC_MARK} 1",
            f"{JOB_MARK} pt-4",
            "state: stopped",
            f"{RC_MARK} 0",
            f"{FIND_MARK} rc.p.e.1",
            "pt-9",
            f"{RC_MARK} 0",
        ]
    )
    jobs = sched.parse_status(out)
    assert jobs["pt-1"] == JobInfo("pt-1", None, JobState.RUNNING, "Running")
    assert (jobs["pt-2"].state, jobs["pt-2"].raw_state) == (JobState.UNKNOWN, "SUCCEEDED")  # unmapped word
    assert "pt-3" not in jobs  # the platform does not know it
    assert jobs["pt-4"].state is JobState.CANCELLED  # case-insensitive fallback
    assert (jobs["pt-9"].state, jobs["pt-9"].name) == (JobState.UNKNOWN, "rc.p.e.1")
    assert sched.parse_status("") == {}
    with pytest.raises(SchedulerOutputError):
        sched.parse_status("stray line before any block\n")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from([f"{JOB_MARK} pt-1", f"{FIND_MARK} n", f"{RC_MARK} 0", "state: Running"])
        | st.text(max_size=20),
        max_size=10,
    )
)
def test_parse_status_never_raises_anything_else(lines: list[str]) -> None:
    with contextlib.suppress(SchedulerOutputError):
        CommandTemplate(ACP).parse_status("\n".join(lines))


# ---- against the fake platform ------------------------------------------------------------------


class Platform:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = dict(os.environ, ACP_DIR=str(root / "acp"), PATH=f"{SHIM}:{os.environ['PATH']}")
        self.sched = CommandTemplate(ACP)

    def sh(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=self.env, timeout=60)

    def submit(self, body: str, name: str) -> str:
        run_dir = self.root / name
        run_dir.mkdir(parents=True)
        req = request(run_dir, name)
        req = JobRequest(req.name, req.run_dir, req.wrapper, req.output, req.walltime_seconds, 0)
        Path(req.wrapper).write_text(body)
        (run_dir / "job.sh").write_text(self.sched.job_script(req))
        out = self.sh(self.sched.submit_command(str(run_dir / "job.sh"), req))
        assert out.returncode == 0, out.stderr
        return self.sched.parse_submit(out.stdout)

    def status(self, ids: list[str], names: tuple[str, ...] = ()) -> dict[str, JobInfo]:
        out = self.sh(self.sched.status_command(ids, names))
        assert out.returncode == 0, out.stderr
        return dict(self.sched.parse_status(out.stdout))

    def wait(self, job_id: str, state: JobState, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while (current := self.status([job_id]).get(job_id)) is None or current.state is not state:
            assert time.monotonic() < end, current
            time.sleep(0.1)


@pytest.fixture
def platform(tmp_path: Path):  # type: ignore[no-untyped-def]
    p = Platform(tmp_path)
    yield p
    for pgid in (tmp_path / "acp").glob("pt-*/pgid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(pgid.read_text()), signal.SIGKILL)


def test_c500_mapping_end_to_end(platform: Platform) -> None:
    (platform.root / "acp").mkdir()
    (platform.root / "acp" / "pending_seconds").write_text("1")
    ok = platform.submit("echo ran\n", "rc.p.ok.1")
    bad = platform.submit("exit 5\n", "rc.p.bad.1")
    first = platform.status([ok, bad, "pt-9999x"])
    assert {first[ok].state, first[bad].state} <= {JobState.QUEUED, JobState.RUNNING, JobState.COMPLETED}
    assert "pt-9999x" not in first
    platform.wait(ok, JobState.COMPLETED)
    platform.wait(bad, JobState.FAILED)
    assert (platform.root / "rc.p.ok.1" / "wrapper.sh").exists()


def test_stop_find_and_cancel_again(platform: Platform) -> None:
    job = platform.submit("sleep 60\n", "rc.p.long.1")
    platform.wait(job, JobState.RUNNING)
    assert platform.sched.parse_find(platform.sh(platform.sched.find_command("rc.p.long.1")).stdout) == [job]
    assert platform.status([], ("rc.p.long.1",))[job].state is JobState.UNKNOWN  # listed by name
    assert platform.sh(platform.sched.cancel_command(job)).returncode == 0
    platform.wait(job, JobState.CANCELLED)
    assert platform.sh(platform.sched.cancel_command("pt-nope")).returncode == 0
    assert platform.sched.parse_find(platform.sh(platform.sched.find_command("rc.p.long.1")).stdout) == []
