"""Progress on a terminal, nothing extra when piped (issue 19, item 4): ``reconcile --until-done``
draws one live line (counts by status, the next pass) on a terminal (a real pseudo-terminal here)
and prints only its log lines when stderr is a pipe."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

from tests.example.tools import copy_example, git_env, tool
from tests.projectkit import commit_project


def _project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    env = {**git_env(tmp_path), "TERM": "xterm", "COLUMNS": "200"}
    env.pop("NO_COLOR", None)
    project = copy_example(tmp_path / "project")
    commit_project(project, {}, message="the example")
    return project, env


def test_piped_output_has_the_log_lines_only(tmp_path: Path) -> None:
    project, env = _project(tmp_path)
    done = subprocess.run(
        [tool("reconcile"), "--until-done"], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "next pass in" not in done.stderr and "\x1b" not in done.stderr
    assert "logreg_blobs_s0: running -> done" in done.stderr


def test_a_terminal_gets_one_live_line(tmp_path: Path) -> None:
    project, env = _project(tmp_path)
    master, slave = pty.openpty()
    proc = subprocess.Popen([tool("reconcile"), "--until-done"], cwd=project, env=env, stdout=slave, stderr=slave)
    os.close(slave)
    seen = b""
    end = time.monotonic() + 300
    while time.monotonic() < end:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    assert proc.wait(timeout=60) == 0
    text = seen.decode("utf-8", "replace")
    assert "next pass in" in text and "(Ctrl-C stops after the current pass)" in text
    assert "running" in text and "logreg_blobs_s0: running -> done" in text
