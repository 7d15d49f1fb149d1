"""A status write killed half-way leaves nothing of ours visible (issue 14 item 8, invariant (c)).

The temporary file of an atomic write lives in ``.reconciler/tmp/`` (which ignores itself), so a
kill leaves nothing for ``git status`` or ``git add -A`` to see; what a killed writer left (there,
or beside the target as older versions and writes outside a project did) is removed by the next
pass under the lock. Real projects, real passes, a real writer killed with SIGKILL mid-write.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reconciler.atomic import STALE_SECONDS, sweep_temp_files
from reconciler.engine import PassResult, reconcile_once
from tests.engine.project import git, make_project
from tests.truth.files_invariant import stray_files

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

EXP = "job_s0"
NOTE = f"experiments/logs/{EXP}.md"


def a_pass(project: Path) -> PassResult:
    return reconcile_once(project, log=lambda message: None)


def finished_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose one run is done and committed (its note exists)."""
    project = make_project(tmp_path, seeds=1)
    monkeypatch.setenv("LAUNCH_LOG", str(tmp_path / "launches.log"))  # the job appends to it
    deadline = time.monotonic() + 60
    while not (project / "experiments" / "results" / f"{EXP}.csv").exists() or git(project, "status", "--porcelain"):
        assert time.monotonic() < deadline, "the run did not finish"
        a_pass(project)
        time.sleep(0.1)
    a_pass(project)
    assert (project / NOTE).exists()
    assert stray_files(project) == []
    return project


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def committed_names(project: Path) -> list[str]:
    return git(project, "ls-tree", "-r", "--name-only", "HEAD").splitlines()


def test_temp_files_left_by_killed_writes_are_removed_by_the_next_pass_and_never_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = finished_project(tmp_path, monkeypatch)
    pid = dead_pid()
    left = [
        f"experiments/logs/.{EXP}.md.{pid}.deadbeef.tmp",  # where older versions wrote them
        f"dispatch/.state.json.{pid}.0badc0de.tmp",
        f"progress/.escalate_{EXP}.md.{pid}.12345678.tmp",
        f"experiments/results/.{EXP}.csv.{pid}.abcdef01.tmp",
        f".reconciler/tmp/state.json.{pid}.feedf00d.tmp",  # where they are written now
    ]
    for rel in left:
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text("half a file")
    assert stray_files(project) == sorted(r for r in left if not r.startswith(".reconciler/"))

    result = a_pass(project)
    assert result.warnings == (), result.warnings  # no "uncommitted changes" about them
    assert [rel for rel in left if (project / rel).exists()] == []
    assert stray_files(project) == []
    assert not [n for n in committed_names(project) if n.endswith(".tmp")]
    assert git(project, "status", "--porcelain") == ""

    # A live writer's fresh file is left alone; once it is older than any write of ours, it goes.
    live = project / f"experiments/logs/.{EXP}.md.{os.getpid()}.cafebabe.tmp"
    live.write_text("being written")
    assert a_pass(project).commit is None
    assert live.exists() and not [n for n in committed_names(project) if n.endswith(".tmp")]
    old = time.time() - STALE_SECONDS - 60
    os.utime(live, (old, old))
    assert a_pass(project).warnings == ()
    assert not live.exists() and stray_files(project) == []


WRITER = textwrap.dedent(
    """
    import os, sys, time
    from reconciler import atomic
    def stuck(fd):  # the bytes are in the temporary file; the kill comes before the rename
        print("writing", flush=True)
        time.sleep(120)
    os.fsync = stuck
    atomic.atomic_write_text(sys.argv[1], "half of a note\\n")
    """
)


def test_a_status_write_killed_half_way_leaves_nothing_visible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = finished_project(tmp_path, monkeypatch)
    before = (project / NOTE).read_text()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(project / NOTE)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert (project / NOTE).read_text() == before  # atomic: the old note, whole
    assert stray_files(project) == []  # the temporary file is not visible to git
    assert git(project, "status", "--porcelain") == ""

    result = a_pass(project)
    assert result.warnings == () and result.commit is None
    assert list((project / ".reconciler" / "tmp").iterdir()) == []  # and the next pass removed it
    assert stray_files(project) == []
    assert not [n for n in committed_names(project) if n.endswith(".tmp")]


def test_the_sweep_removes_only_our_own_abandoned_temp_files(tmp_path: Path) -> None:
    pid, mine = dead_pid(), os.getpid()
    files = {
        f"experiments/logs/.a.md.{pid}.deadbeef.tmp": False,  # ours, writer dead
        f"experiments/logs/.a.md.{mine}.deadbeef.tmp": True,  # ours, writer alive and fresh
        "experiments/logs/.a.md.swp": True,  # not our pattern
        "experiments/logs/a.md.tmp": True,
        f"experiments/logs/.a.md.{pid}.NOTHEX00.tmp": True,
        f"notes/.a.md.{pid}.deadbeef.tmp": True,  # not a path we write
        f"experiments/results/sub/.r.csv.{pid}.deadbeef.tmp": False,  # under a /** dir
        f".reconciler/tmp/state.json.{pid}.deadbeef.tmp": False,
        f".reconciler/tmp/state.json.{mine}.deadbeef.tmp": True,
        # a result being copied from a target when its pass was killed (staging file, transport's part)
        f".reconciler/tmp/e1_s0.csv.{pid}.0123abcd.tmp": False,
        f".reconciler/tmp/.e1_s0.csv.{pid}.0123abcd.tmp.89abcdef.part": False,
    }
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    removed = sweep_temp_files(tmp_path, ("experiments/logs", "experiments/results/**"))
    assert removed == sorted(rel for rel, kept in files.items() if not kept)
    assert all((tmp_path / rel).exists() == kept for rel, kept in files.items())
    later = time.time() + STALE_SECONDS + 1  # long after: even a live pid's file is abandoned
    assert sweep_temp_files(tmp_path, ("experiments/logs",), now=later) == sorted(
        [f"experiments/logs/.a.md.{mine}.deadbeef.tmp", f".reconciler/tmp/state.json.{mine}.deadbeef.tmp"]
    )
