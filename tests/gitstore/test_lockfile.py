"""ProjectLock: one writer per project, across processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.errors import LockHeld
from reconciler.lockfile import ProjectLock, describe_holder

HOLDER = """
import sys
from reconciler.lockfile import ProjectLock
lock = ProjectLock(sys.argv[1], argv=["reconcile", "--once"])
lock.acquire()
print("ready", flush=True)
sys.stdin.read()
lock.release()
"""


def _hold(project: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(project)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_second_process_gets_lock_held_naming_the_holder(tmp_path: Path) -> None:
    proc = _hold(tmp_path)
    try:
        with pytest.raises(LockHeld) as info, ProjectLock(tmp_path):
            pass
        err = info.value
        assert err.path == str(tmp_path / ".reconciler" / "lock")
        assert f"pid {proc.pid}" in err.holder
        assert socket.gethostname() in err.holder
        assert "reconcile --once" in err.holder
        assert f"pid {proc.pid}" in str(err)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
    with ProjectLock(tmp_path) as lock:  # released on a clean exit
        assert lock.held


def test_lock_is_released_when_the_holder_dies(tmp_path: Path) -> None:
    proc = _hold(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    with ProjectLock(tmp_path) as lock:
        assert lock.held


def test_holder_record_and_release(tmp_path: Path) -> None:
    lock = ProjectLock(tmp_path, argv=["reconcile", "watch"])
    with lock:
        info = json.loads(lock.path.read_text())
        assert info["pid"] == os.getpid()
        assert info["argv"] == ["reconcile", "watch"]
        assert info["started"][-6] in "+-"  # ISO 8601 with a zone offset
        with pytest.raises(LockHeld):  # a second lock in the same process conflicts too
            ProjectLock(tmp_path).acquire()
        with pytest.raises(RuntimeError):
            lock.acquire()
    assert not lock.held
    assert lock.path.exists() and lock.path.read_text() == ""
    lock.release()  # releasing twice is harmless


def test_describe_holder_tolerates_anything() -> None:
    assert describe_holder("").startswith("unknown holder")
    assert describe_holder("garbage") == "garbage"
    text = json.dumps({"pid": 7, "hostname": "h", "started": "t", "argv": []})
    assert describe_holder(text) == "pid 7 on h since t"
