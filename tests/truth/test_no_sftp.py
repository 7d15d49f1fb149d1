"""Issue 14, item 10: SFTP is not required, and ``reconcile plan`` writes nothing on a target.

A real sshd configured without ``Subsystem sftp`` (``ssh host cmd`` works, SFTP does not): whole
passes still ship the code, install the probe and collect the results, over the exec channel.
And ``reconcile plan`` against an ssh target leaves the target's root byte-identical."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from reconciler.backends.ssh import SshTransport
from reconciler.errors import RemoteFileMissing, TransportError
from tests.engine.project import git
from tests.engine.test_ssh_target import killing_runs, launches, make_ssh_project, passes_until, run_pass, statuses
from tests.fixtures.sshd import SshdHost

pytestmark = pytest.mark.ssh


def test_passes_work_against_an_sshd_without_the_sftp_subsystem(
    sshd_no_sftp: SshdHost, rctest_dir: Path, tmp_path: Path
) -> None:
    project = make_ssh_project(tmp_path, sshd_no_sftp, rctest_dir, seeds=2, sleep=0.0)
    with killing_runs(rctest_dir):
        first = run_pass(project)
        assert not first.unreachable, first.unreachable  # was "unreachable (... Session request failed)"
        assert set(statuses(project).values()) == {"running"}, statuses(project)
        passes_until(project, lambda s: bool(s) and all(v == "done" for v in s.values()))
    assert sorted(launches(rctest_dir)) == ["job_s0", "job_s1"]
    for seed in range(2):
        rows = (project / f"experiments/results/job_s{seed}.csv").read_text().splitlines()
        assert rows[1].startswith(f"job_s{seed},m,d,main,accuracy,{seed},0.9")  # collected over exec


def test_put_and_get_over_exec_round_trip_and_name_the_missing_subsystem(
    sshd_no_sftp: SshdHost, rctest_dir: Path, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 1000 + b"\n no newline at the end"
    local = tmp_path / "blob"
    local.write_bytes(data)
    back = tmp_path / "back"

    async def scenario() -> str:
        transport = await SshTransport.open(sshd_no_sftp.options())
        try:
            await transport.put(local, f"~/{rctest_dir.name}/blob")
            await transport.get(f"{rctest_dir}/blob", back)
            with pytest.raises(RemoteFileMissing, match="no-such-blob does not exist"):
                await transport.get(f"{rctest_dir}/no-such-blob", tmp_path / "absent")
            try:
                await transport.put(local, "/nonexistent-dir/blob")
            except TransportError as exc:
                return str(exc)
            return ""
        finally:
            await transport.close()

    message = asyncio.run(scenario())
    assert (rctest_dir / "blob").read_bytes() == data and back.read_bytes() == data
    assert not [p for p in rctest_dir.iterdir() if p.name != "blob"]  # no temp file left
    assert "no SFTP subsystem" in message and "exec channel" in message, message


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root`` (root included) with its mode, size and mtime in ns."""
    out = {}
    for path in [root, *root.rglob("*")]:
        st = os.lstat(path)
        out[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def test_plan_touches_nothing_on_an_ssh_target(sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path) -> None:
    from tests.engine.project import reconcile

    project = make_ssh_project(tmp_path, sshd_hosts[0], rctest_dir, seeds=2, sleep=0.0)
    before = snapshot(rctest_dir)  # a fresh target: not even the root exists yet
    plan = reconcile(project, "plan", "-C", str(project))
    assert plan.returncode == 1, plan.stdout + plan.stderr  # launches pending
    assert "+ launch job_s0 attempt 1 on gpu1" in plan.stdout and "unreachable" not in plan.stdout
    assert snapshot(rctest_dir) == before
    # And on a target in use (probe installed, runs there): still nothing changes.
    with killing_runs(rctest_dir):
        passes_until(project, lambda s: bool(s) and all(v == "done" for v in s.values()))
        (project / "dispatch" / "experiments.yaml").write_text(
            (project / "dispatch" / "experiments.yaml").read_text().replace("seeds: [0, 1]", "seeds: [0, 1, 2]")
        )
        git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "one more seed")
        before = snapshot(rctest_dir)
        again = reconcile(project, "plan", "-C", str(project))
        assert "+ launch job_s2 attempt 1 on gpu1" in again.stdout, again.stdout + again.stderr
        assert snapshot(rctest_dir) == before
