"""The README's exit-code table, row by row: each row's example command is run as written (in the
state the row describes) and must exit with the row's code. A row added to the table without a
scenario here fails the test, and so does a scenario whose row is gone."""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from reconciler.lockfile import LOCK_RELPATH
from tests.example.tools import REPO, copy_example, git_env, tool
from tests.projectkit import commit_project

ROW = re.compile(r"^\| (\d+) \| (.+?) \| `(.+?)`(.*)\|$")


def readme_rows() -> dict[int, str]:
    """Exit code -> the example command of its row in the README's "Exit codes" table."""
    text = (REPO / "README.md").read_text()
    section = text.split("### Exit codes", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = ROW.match(line)
        if match:
            rows[int(match.group(1))] = match.group(3)
    return rows


def _project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    env = git_env(tmp_path)
    project = copy_example(tmp_path / "project")
    commit_project(project, {}, message="the example")
    return project, env


def _argv(command: str, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The README's command as argv (``reconcile`` the installed one) and its environment."""
    words = shlex.split(command)
    env = dict(env)
    while words and "=" in words[0] and not words[0].startswith("-"):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    assert words[0] == "reconcile", command
    return [tool("reconcile"), *words[1:]], env


def run_row(code: int, command: str, project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv, env = _argv(command, env)
    if code == 75:  # another reconcile holds the project lock
        lock = project / LOCK_RELPATH
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120)
        finally:
            os.close(fd)
    if code == 130:  # interrupted
        proc = subprocess.Popen(
            argv, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=ctrl_c_as_on_a_terminal,
        )  # fmt: skip
        time.sleep(1.5)  # it is waiting (no pass runs: nothing changes)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)
    return subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=300)


SCENARIOS = {0, 1, 2, 3, 75, 124, 130}


def ctrl_c_as_on_a_terminal() -> None:
    """SIGINT as a terminal's foreground job has it: a suite started in the background by a
    non-interactive shell (``nohup ... &``) inherits it ignored, and an ignored SIGINT stays
    ignored in ``reconcile`` as in any program."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_the_table_and_the_scenarios_agree() -> None:
    assert set(readme_rows()) == SCENARIOS


@pytest.mark.parametrize("code", sorted(SCENARIOS))
def test_each_row_exits_with_its_code(code: int, tmp_path: Path) -> None:
    command = readme_rows()[code]
    project, env = _project(tmp_path)
    done = run_row(code, command, project, env)
    assert done.returncode == code, f"{command!r} exited {done.returncode}, not {code}: {done.stdout}{done.stderr}"
    assert "Traceback" not in done.stderr
    if code == 2:
        assert len(done.stderr.strip().splitlines()) == 1 and "reconcile status" in done.stderr
    if code == 3:
        assert "the traceback is in .reconciler/crash.log" in done.stderr
        assert "Traceback (most recent call last)" in (project / ".reconciler" / "crash.log").read_text()
    if code == 75:
        assert "lock" in done.stderr.lower()
