"""A hostile target sends without end (issue 15, item 2): a result file linked to ``/dev/zero``, a
result CSV far larger than any result, a probe answer of 300 MB. Every byte has a cap
(``policies.limits``): past it the run fails with a clear reason (or the target counts as
answering garbage for the pass), nothing partial is left in the project, nothing is committed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reconciler.backends.ssh import SshTransport
from reconciler.dashboard.actions import MAX_LOG_LINE, log_tail
from reconciler.errors import OutputTooLarge, RefusedFile
from reconciler.load.desired import load_desired
from reconciler.model.actions import Collect
from reconciler.model.config import Limits
from reconciler.model.status import StateFile
from tests.backends.helpers import Backend, backend, run  # noqa: F401 (the fixture)
from tests.engine.project import git, make_project, reconcile, until
from tests.fixtures.sshd import SshdHost

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

RESULT = "experiments/results"


def _configure(project: Path, *, limits: str = "", second_target: bool = False) -> None:
    config = project / "config" / "reconciler.yaml"
    text = config.read_text()
    if second_target:
        text = text.replace(
            "targets:\n",
            "targets:\n  hostile:\n    kind: local\n    root: .reconciler/runs-hostile\n    max_runs: 8\n",
        )
    if limits:
        text += f"  limits: {limits}\n"
    config.write_text(text)


def _use_dispatch(project: Path, experiments: dict[str, tuple[str, str]]) -> None:
    """``experiments``: id -> (target, command)."""
    body = "".join(
        f"  - id: {exp_id}\n    command: {json.dumps(command)}\n    targets: [{target}]\n"
        "    group: main\n    method: m\n    dataset: d\n"
        for exp_id, (target, command) in experiments.items()
    )
    head = textwrap.dedent(
        """\
        version: 1
        defaults:
          phase: pilot
          expected_duration_hours: 0.01
          max_retries: 0
        experiments:
        """
    )
    (project / "dispatch" / "experiments.yaml").write_text(head + body)
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "hostile jobs")


def _entry(project: Path, exp_id: str) -> dict[str, object]:
    path = project / "dispatch" / "state.json"
    if not path.exists():
        return {}
    return next((e for e in json.loads(path.read_text())["experiments"] if e["id"] == exp_id), {})


def _step(project: Path) -> None:
    ran = reconcile(project, "--once")
    assert "Traceback" not in ran.stderr, ran.stderr


def _nothing_partial(project: Path, name: str) -> None:
    results = project / RESULT
    left = sorted(p.name for p in results.iterdir()) if results.exists() else []
    assert left == [], left
    assert git(project, "log", "--all", "--format=%H", "--", f"{RESULT}/{name}") == ""


def test_a_result_file_symlinked_to_dev_zero_fails_at_once(tmp_path: Path) -> None:
    """The attack as seen (8.4 GB copied in 81 s): the job links its result file to ``/dev/zero``."""
    project = make_project(tmp_path, seeds=1)
    _use_dispatch(project, {"zero": ("local", 'mkdir -p "$(dirname {result_file})"; ln -s /dev/zero {result_file}')})
    started = time.monotonic()
    until(lambda: _entry(project, "zero").get("status") == "failed", step=lambda: _step(project), deadline=30)
    assert time.monotonic() - started < 30
    entry = _entry(project, "zero")
    assert entry["failure_class"] == "invalid_result"
    assert "not a regular file" in json.dumps(entry), entry
    _nothing_partial(project, "zero.csv")


def test_a_result_csv_past_the_cap_is_refused_not_committed(tmp_path: Path) -> None:
    """A 54 MB result CSV (scaled: 20 KB against a 4 KiB cap): a valid CSV, only too large."""
    project = make_project(tmp_path, seeds=1)
    _configure(project, limits="{result_bytes: 4096}")
    rows = "".join(f"big,m,d,main,accuracy,{i},0.5,h,,2026-11-26T00:00:00Z\\n" for i in range(400))
    header = "exp_id,method,dataset,group,metric,seed,value,host,gpu,finished_at\\n"
    _use_dispatch(
        project,
        {"big": ("local", f"mkdir -p \"$(dirname {{result_file}})\"; printf '{header}{rows}' > {{result_file}}")},
    )
    until(lambda: _entry(project, "big").get("status") == "failed", step=lambda: _step(project), deadline=60)
    entry = _entry(project, "big")
    assert entry["failure_class"] == "invalid_result"
    assert "result file larger than 4 KiB cap" in json.dumps(entry), entry
    _nothing_partial(project, "big.csv")
    assert not list(project.rglob("*.incoming")) and not list(project.rglob("*.part"))


HOSTILE_PROBE = textwrap.dedent(
    """\
    import sys
    chunk = b"x" * (1 << 20)
    for _ in range(300):  # a 300 MB answer, sent in 1 MB writes (the target's memory stays small)
        sys.stdout.buffer.write(chunk)
    """
)


MEASURE = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
    "sys.stderr.write(done.stderr)\n"
    "print(f'maxrss_kib={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}')\n"
)


def _measured_pass(project: Path) -> subprocess.CompletedProcess[str]:
    """``reconcile --once`` under a parent of its own that prints the peak memory of the pass and
    every process it started (``RUSAGE_CHILDREN`` of that parent alone)."""
    env = {**os.environ, "LAUNCH_LOG": str(project.parent / "launches.log")}
    command = [sys.executable, "-m", "reconciler", "--once", "-C", str(project)]
    return subprocess.run(
        [sys.executable, "-c", MEASURE, *command], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_300_mb_probe_answer_is_cut_at_the_cap_and_the_other_targets_proceed(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    _configure(project, limits="{probe_bytes: 1048576}", second_target=True)
    _use_dispatch(
        project,
        {
            "good": ("local", "python3 job.py --exp {exp_id} --out {result_file}"),
            "held": ("hostile", "sleep 600"),
        },
    )
    _step(project)  # installs the probe on both targets
    probes = list((project / ".reconciler" / "runs-hostile" / ".reconciler").glob("probe-*.py"))
    assert probes
    for probe in probes:  # the target replaces what answers
        probe.write_text(HOSTILE_PROBE)
    started = time.monotonic()
    ran = _measured_pass(project)
    assert time.monotonic() - started < 30
    assert "Traceback" not in ran.stderr, ran.stderr
    assert "hostile" in ran.stderr and "larger than 1 MiB cap" in ran.stderr, ran.stderr
    # The pass's own peak, with every process it started (measured by a parent of its own, so
    # no earlier child of this test process counts): the 300 MB were never held.
    peak_kib = int(ran.stdout.strip().splitlines()[-1].removeprefix("maxrss_kib="))
    assert peak_kib < 250 * 1024, peak_kib
    until(lambda: _entry(project, "good").get("status") == "done", step=lambda: _step(project), deadline=60)
    assert _entry(project, "held").get("status") != "done"


def _log_endpoint(project: Path, exp_id: str) -> dict[str, object]:
    """What the dashboard's ``/api/experiments/<id>/log`` answers (``actions.log_tail``)."""
    state = StateFile.loads((project / "dispatch" / "state.json").read_text())
    entry = next(e for e in state.entries if e.id == exp_id)
    return log_tail(project, load_desired(project).config, entry, None, 200)


def test_a_400_mb_one_line_log_is_read_from_its_end_within_the_cap(tmp_path: Path) -> None:
    """The dashboard's log endpoint on a 400 MB ``stdout.log`` of one line (``tail -n`` sent it all)."""
    project = make_project(tmp_path, seeds=1)
    until(lambda: _entry(project, "job_s0").get("status") == "done", step=lambda: _step(project), deadline=60)
    run_dir = next((project / ".reconciler" / "runs-local" / "runs" / "job_s0").iterdir())
    log = run_dir / "stdout.log"
    with log.open("wb") as f:  # 400 MB without a newline (sparse: the disk stays free)
        f.truncate(400 * 1024 * 1024)
        f.seek(0, 2)
        f.write(b"the end of the only line")
    started = time.monotonic()
    answer = _log_endpoint(project, "job_s0")
    assert time.monotonic() - started < 10
    assert answer["ok"], answer
    lines = answer["lines"]
    assert isinstance(lines, list) and len(lines) == 1
    assert len(lines[0]) == MAX_LOG_LINE + 1 and lines[0].endswith("the end of the only line")


def _hostile_results(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "zero.csv").symlink_to("/dev/zero")
    (root / "big.csv").write_bytes(b"x" * 5000)
    (root / "ok.csv").write_text("exp_id,value\nA,1\n")


def test_every_transport_copies_only_a_regular_file_within_the_cap(backend: Backend, tmp_path: Path) -> None:  # noqa: F811
    """The same refusals over ``LocalTransport`` and SSH (SFTP ``lstat``, then counted on receipt)."""
    _hostile_results(backend.make_root())
    dest = tmp_path / "project" / RESULT / "A.csv"

    async def scenario() -> list[str]:
        runner = await backend.runner()
        runner.limits = Limits(result_bytes=4096)
        refused = []
        for name in ("zero.csv", "big.csv"):
            action = Collect(exp_id="A", target="t", attempt=1, remote_path=str(backend.root / name), local_path="x")
            with pytest.raises(RefusedFile) as caught:
                await asyncio.wait_for(runner.collect(action, dest), 10)
            refused.append(str(caught.value))
        ok = Collect(exp_id="A", target="t", attempt=1, remote_path=str(backend.root / "ok.csv"), local_path="x")
        await runner.collect(ok, dest)
        return refused

    zero, big = run(scenario())
    assert "not a regular file" in zero
    assert big == "result file larger than 4 KiB cap"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["A.csv"]  # nothing partial left


@pytest.mark.ssh
def test_the_exec_channel_fallback_refuses_them_too(sshd_no_sftp: SshdHost, rctest_dir: Path, tmp_path: Path) -> None:
    root = rctest_dir / "caps"
    _hostile_results(root)
    root.chmod(0o777)

    async def scenario() -> list[str]:
        transport = await SshTransport.open(sshd_no_sftp.options(), name="nosftp")
        try:
            refused = []
            for name in ("zero.csv", "big.csv"):
                with pytest.raises(RefusedFile) as caught:
                    await asyncio.wait_for(transport.get(str(root / name), tmp_path / name, max_bytes=4096), 10)
                refused.append(str(caught.value))
            await transport.get(str(root / "ok.csv"), tmp_path / "ok.csv", max_bytes=4096)
            return refused
        finally:
            await transport.close()

    zero, big = run(scenario())
    assert "not a regular file" in zero and big == "result file larger than 4 KiB cap"
    assert (tmp_path / "ok.csv").read_text() == "exp_id,value\nA,1\n"


def test_a_probe_answer_past_the_cap_over_ssh_is_a_transport_error(sshd_hosts: list[SshdHost]) -> None:
    async def scenario() -> str:
        transport = await SshTransport.open(sshd_hosts[0].options(), name="ssh")
        try:
            with pytest.raises(OutputTooLarge) as caught:
                await transport.run("head -c 300000000 /dev/zero", timeout=20, max_output=1024 * 1024)
            done = await transport.run("echo still here", timeout=20)  # the connection is fine
            assert done.stdout == "still here\n"
            return str(caught.value)
        finally:
            await transport.close()

    assert "larger than 1 MiB cap" in run(scenario())
