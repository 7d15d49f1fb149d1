"""``reconcile validate``: summary line, exit codes, project lookup, ``--json`` and ``--rev``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.commands.validate import validate
from tests.load.project import snapshot, write_project

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@localhost",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@localhost",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return write_project(tmp_path / "proj")


def test_valid_project_prints_a_summary_and_exits_0(project: Path) -> None:
    before = snapshot(project)
    result = CliRunner().invoke(main, ["validate", "proj"])
    assert result.exit_code == 0, result.output
    assert result.output == "proj: valid (6 files, 5 experiments)\n"
    assert snapshot(project) == before


def test_default_path_is_the_current_directory(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    result = CliRunner().invoke(validate, [])
    assert (result.exit_code, result.output) == (0, ".: valid (6 files, 5 experiments)\n")


@pytest.mark.parametrize("inside", ["proj/dispatch/main.yaml", "proj/experiments", "proj/config/reconciler.yaml"])
def test_a_path_inside_the_project_validates_the_project(project: Path, inside: str) -> None:
    result = CliRunner().invoke(validate, [inside])
    assert (result.exit_code, result.output) == (0, "proj: valid (6 files, 5 experiments)\n")


def test_json_output_when_valid(project: Path) -> None:
    result = CliRunner().invoke(validate, ["proj", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output) == {"valid": True, "problems": []}


def test_a_folder_without_config_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(validate, ["empty"])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "config/reconciler.yaml:1:1: (file): missing required file",
        "empty: invalid (1 problem in 1 file)",
    ]
    assert list((tmp_path / "empty").iterdir()) == []


def test_rev_validates_the_committed_files_not_the_working_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    project = write_project(repo / "sub" / "proj")  # the project sits below the repository root
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "valid project")
    sha = git(repo, "rev-parse", "HEAD").strip()
    (project / "dispatch/main.yaml").write_text("version: 1\nexperiments: [\n")
    monkeypatch.chdir(repo)

    dirty = CliRunner().invoke(validate, ["sub/proj"])
    assert dirty.exit_code == 2
    assert dirty.output.splitlines()[0].startswith("dispatch/main.yaml:3:1: (file): invalid YAML:")

    before = snapshot(repo)
    committed = CliRunner().invoke(validate, ["sub/proj", "--rev", "HEAD"])
    assert committed.exit_code == 0, committed.output
    assert committed.output == f"sub/proj@{sha[:12]}: valid (6 files, 5 experiments)\n"
    assert snapshot(repo) == before

    missing = CliRunner().invoke(validate, ["sub/proj", "--rev", "no-such-rev", "--json"])
    assert missing.exit_code == 2
    (problem,) = json.loads(missing.output)["problems"]
    assert problem["message"].startswith("git: unknown revision 'no-such-rev'")


def test_as_a_process_exit_code_2(project: Path) -> None:
    (project / "dispatch/main.yaml").write_text("version: 1\nexperiments:\n  - id: a\n    command: x {foo}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "proj"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert proc.stdout.splitlines()[0] == (
        "dispatch/main.yaml:4:5: experiments[0].command: unknown placeholder '{foo}' "
        "(known: {seed}, {exp_id}, {checkpoint_dir}, {result_file})"
    )
