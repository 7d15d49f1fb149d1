"""Options that mean what the README says: every subcommand takes ``-C``, a ``-C`` before the
subcommand is its project, ``--once`` with a subcommand is refused in one line (exit 2), and a
project with no commit yet or a directory that is no project is invalid input (exit 2) said in one
line, never a raw git message."""

from __future__ import annotations

import subprocess
from pathlib import Path

import click
import pytest

from reconciler.cli import _COMMANDS, main
from tests.example.tools import copy_example, git_env, tool
from tests.projectkit import commit_project


def cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("reconcile"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_every_subcommand_takes_dash_c() -> None:
    ctx = click.Context(main)
    for name in _COMMANDS:
        command = main.get_command(ctx, name)
        assert command is not None
        assert any("-C" in p.opts for p in command.params), f"reconcile {name} has no -C"


def test_dash_c_before_the_subcommand_is_its_project(tmp_path: Path) -> None:
    env = git_env(tmp_path)
    project = commit_project(copy_example(tmp_path / "project"), {}, message="the example")
    before = cli(tmp_path, env, "-C", str(project), "validate")
    after = cli(tmp_path, env, "validate", "-C", str(project))
    assert before.returncode == after.returncode == 0
    assert cli(tmp_path, env, "-C", str(project), "plan", "--json").returncode == 1  # launches due
    status = cli(tmp_path, env, "-C", str(project), "status", "--json")
    assert status.returncode == 0 and status.stdout.strip() == "[]"


@pytest.mark.parametrize("args", [["--once", "status"], ["--until-done", "plan"], ["--no-push", "status"]])
def test_pass_options_with_a_subcommand_are_refused(tmp_path: Path, args: list[str]) -> None:
    env = git_env(tmp_path)
    project = commit_project(copy_example(tmp_path / "project"), {}, message="the example")
    done = cli(project, env, *args)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and "belong(s) to a pass" in line


@pytest.mark.parametrize("command", [["status"], ["plan"], ["--once"], ["log", "x"], ["wait", "x"], ["logs", "x"]])
def test_no_commit_yet_and_no_project_are_invalid_input(tmp_path: Path, command: list[str]) -> None:
    env = git_env(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    subprocess.run(["git", "init", "-q", str(empty)], env=env, check=True)
    done = cli(empty, env, *command)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "has no commit yet" in line and "git commit" in line and "HEAD" not in line
    plain = tmp_path / "plain"
    plain.mkdir(exist_ok=True)
    done = cli(plain, env, *command)
    assert done.returncode == 2 and "is not inside a git repository" in done.stderr
    done = cli(tmp_path, env, *command[:1], "-C", str(tmp_path / "missing"), *command[1:])
    assert done.returncode == 2 and "does not exist" in done.stderr
