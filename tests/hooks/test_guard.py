"""``reconcile guard``: which paths are the reconciler's, and when a staged one passes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import pytest
from click.testing import CliRunner

from reconciler.commands.guard import guard as guard_command
from reconciler.commands.guard import is_owned
from tests.example.tools import git, git_env


@pytest.mark.parametrize(
    ("path", "owned"),
    [
        ("dispatch/state.json", True),
        ("examples/project/dispatch/state.json", True),
        ("progress/lab.log", True),
        ("progress/env_gadi.json", True),
        ("progress/escalate_mlp_moons_s0.md", True),
        ("experiments/results/mlp_moons_s0.csv", True),
        ("experiments/results/all_results.csv", True),
        ("dispatch/experiments.yaml", False),
        ("dispatch/decisions.yaml", False),
        ("dispatch/state.json.bak", False),
        ("dispatch/state.seed.json", False),
        ("progress/progress.md", False),
        ("experiments/results/runs/x.json", False),
        ("experiments/results/sub/x.csv", False),
    ],
)
def test_owned_paths(path: str, owned: bool) -> None:
    assert is_owned(path) is owned


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    repo = tmp_path / "repo"
    (repo / "dispatch").mkdir(parents=True)
    (repo / "dispatch" / "state.json").write_text('{"experiments": []}\n')
    (repo / "notes.md").write_text("notes\n")
    env = git_env(tmp_path)
    git(repo, env, "init", "-q")
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-q", "-m", "start")
    return repo, env


class Outcome(NamedTuple):
    returncode: int
    stderr: str


def guard(cwd: Path, env: dict[str, str], *files: str) -> Outcome:
    """``reconcile guard`` in this process, in ``cwd`` with ``env`` (git runs as a subprocess);
    the pre-commit tests run the installed program."""
    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner(env=env).invoke(guard_command, list(files))
    finally:
        os.chdir(old)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.output)


def test_nothing_staged_passes(repo: tuple[Path, dict[str, str]]) -> None:
    assert guard(*repo).returncode == 0


def test_staged_edit_and_deletion_are_refused(repo: tuple[Path, dict[str, str]]) -> None:
    path, env = repo
    (path / "notes.md").write_text("more notes\n")
    git(path, env, "rm", "-q", "dispatch/state.json")
    git(path, env, "add", "notes.md")
    proc = guard(path, env)
    assert proc.returncode == 1
    assert "  dispatch/state.json" in proc.stderr and "notes.md" not in proc.stderr
    assert "git restore --staged dispatch/state.json" in proc.stderr


def test_file_arguments_narrow_the_check(repo: tuple[Path, dict[str, str]]) -> None:
    path, env = repo
    (path / "dispatch" / "state.json").write_text("{}\n")
    git(path, env, "add", "-A")
    assert guard(path, env, "notes.md").returncode == 0
    assert guard(path, env, "dispatch/state.json").returncode == 1
    # paths are taken relative to the current directory, as a person types them
    assert guard(path / "dispatch", env, "state.json").returncode == 1


def test_unstaged_edits_are_not_the_guards_business(repo: tuple[Path, dict[str, str]]) -> None:
    path, env = repo
    (path / "dispatch" / "state.json").write_text("{}\n")
    assert guard(path, env).returncode == 0


def test_escape_variable(repo: tuple[Path, dict[str, str]]) -> None:
    path, env = repo
    (path / "dispatch" / "state.json").write_text("{}\n")
    git(path, env, "add", "-A")
    proc = guard(path, {**env, "RECONCILER_ALLOW_STATUS_EDIT": "1"})
    assert proc.returncode == 0 and "allowing" in proc.stderr


def test_a_merge_carrying_the_reconcilers_version_passes(repo: tuple[Path, dict[str, str]]) -> None:
    """Merging the reconciler's branch stages its state.json; that is not a hand edit. Editing
    the file during the merge is."""
    path, env = repo
    git(path, env, "checkout", "-q", "-b", "bot")
    (path / "dispatch" / "state.json").write_text(json.dumps({"experiments": [{"id": "a", "status": "done"}]}))
    (path / "notes.md").write_text("bot notes\n")
    git(path, env, "commit", "-q", "-am", "reconcile: a done")
    git(path, env, "checkout", "-q", "main")
    (path / "notes.md").write_text("my notes\n")
    git(path, env, "commit", "-q", "-am", "notes")
    assert git(path, env, "merge", "bot", check=False).returncode != 0  # conflict in notes.md
    (path / "notes.md").write_text("merged notes\n")
    git(path, env, "add", "notes.md")
    assert "dispatch/state.json" in git(path, env, "diff", "--cached", "--name-only").stdout
    assert guard(path, env).returncode == 0
    (path / "dispatch" / "state.json").write_text("{}\n")
    git(path, env, "add", "dispatch/state.json")
    assert guard(path, env).returncode == 1


def test_outside_git_the_named_files_are_judged(tmp_path: Path) -> None:
    env = git_env(tmp_path)
    env["GIT_CEILING_DIRECTORIES"] = str(tmp_path)
    work = tmp_path / "plain"
    work.mkdir()
    assert guard(work, env).returncode == 0
    assert guard(work, env, "dispatch/state.json").returncode == 1
    assert guard(work, env, "dispatch/experiments.yaml").returncode == 0


def test_before_the_first_commit_the_hint_uses_git_rm(tmp_path: Path) -> None:
    env = git_env(tmp_path)
    repo = tmp_path / "fresh"
    (repo / "dispatch").mkdir(parents=True)
    (repo / "dispatch" / "state.json").write_text("{}\n")
    git(repo, env, "init", "-q")
    git(repo, env, "add", "-A")
    proc = guard(repo, env)
    assert proc.returncode == 1
    assert "undo with: git rm --cached --quiet dispatch/state.json" in proc.stderr
    git(repo, env, "rm", "--cached", "--quiet", "dispatch/state.json")
    assert guard(repo, env).returncode == 0
