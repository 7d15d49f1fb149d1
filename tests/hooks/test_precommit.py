"""pre-commit, for real and offline, in a throwaway git repository holding the example project.

The hooks are ``repo: local`` with ``language: system`` and call this venv's ``reconcile`` by its
absolute path, so nothing is downloaded. The remote form (``.pre-commit-hooks.yaml`` with
``language: python``) is checked with pre-commit's own manifest validator.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.example.tools import REPO, copy_example, git, git_env, run, tool


def pre_commit(repo: Path, env: dict[str, str], *args: str):
    return run([tool("pre-commit"), *args], cwd=repo, env=env)


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The example project in a fresh repository, its hooks pointed at this venv's reconcile."""
    repo = copy_example(tmp_path / "project")
    env = git_env(tmp_path)
    config = yaml.safe_load((repo / ".pre-commit-config.yaml").read_text())
    for hook in config["repos"][0]["hooks"]:
        hook["entry"] = hook["entry"].replace("reconcile", tool("reconcile"), 1)
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    git(repo, env, "init", "-q")
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-q", "--no-verify", "-m", "example project")
    return repo, env


def test_a_good_project_passes(project: tuple[Path, dict[str, str]]) -> None:
    repo, env = project
    proc = pre_commit(repo, env, "run", "--all-files")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reconcile validate" in proc.stdout and "Passed" in proc.stdout


def test_a_bad_dispatch_file_is_blocked_with_file_and_line(project: tuple[Path, dict[str, str]]) -> None:
    repo, env = project
    path = repo / "dispatch" / "experiments.yaml"
    lines = path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.strip() == "stage: 2")
    lines[line - 1] = lines[line - 1].replace("stage: 2", "stage: 0")
    path.write_text("\n".join(lines) + "\n")
    git(repo, env, "add", "dispatch/experiments.yaml")
    proc = pre_commit(repo, env, "run", "--all-files")
    assert proc.returncode != 0
    assert f"dispatch/experiments.yaml:{line}:" in proc.stdout
    assert "stage" in proc.stdout


def test_the_installed_hook_blocks_the_commit(project: tuple[Path, dict[str, str]]) -> None:
    repo, env = project
    assert pre_commit(repo, env, "install").returncode == 0
    head = git(repo, env, "rev-parse", "HEAD").stdout
    (repo / "dispatch" / "experiments.yaml").write_text("version: 1\nexperiments:\n  - id: bad id\n")
    git(repo, env, "add", "-A")
    proc = git(repo, env, "commit", "-m", "broken", check=False)
    assert proc.returncode != 0
    assert "dispatch/experiments.yaml:3:" in proc.stdout + proc.stderr
    assert git(repo, env, "rev-parse", "HEAD").stdout == head


def test_a_staged_hand_edit_of_state_json_is_refused(project: tuple[Path, dict[str, str]]) -> None:
    repo, env = project
    state = {"version": 1, "project": "example", "updated": "", "experiments": []}
    (repo / "dispatch" / "state.json").write_text(json.dumps(state))
    git(repo, env, "add", "dispatch/state.json")
    proc = pre_commit(repo, env, "run")
    assert proc.returncode == 1
    assert "dispatch/state.json" in proc.stdout
    assert "git restore --staged dispatch/state.json" in proc.stdout
    allowed = pre_commit(repo, {**env, "RECONCILER_ALLOW_STATUS_EDIT": "1"}, "run")
    assert allowed.returncode == 0, allowed.stdout


def test_the_reconcilers_own_commits_run_no_hooks(project: tuple[Path, dict[str, str]]) -> None:
    """The reconciler commits with ``commit-tree`` and ``update-ref`` (``gitstore.writer``), which
    run no hooks, so the guard never stands in its way; a person's ``git commit`` of the same file
    is refused. (GitPython's ``index.commit`` would run the pre-commit hook.)"""
    from reconciler.gitstore.repo import ProjectRepo
    from reconciler.gitstore.writer import commit_status

    repo, env = project
    assert pre_commit(repo, env, "install").returncode == 0
    (repo / "dispatch" / "state.json").write_text('{"version": 1, "project": "example", "experiments": []}\n')
    git(repo, env, "add", "dispatch/state.json")
    refused = git(repo, env, "commit", "-m", "by hand", check=False)
    assert refused.returncode != 0 and "git restore --staged" in refused.stdout + refused.stderr
    git(repo, env, "restore", "--staged", "dispatch/state.json")
    with ProjectRepo(repo) as handle:
        sha = commit_status(handle, ["dispatch/state.json"], "reconcile: record state")
    assert sha is not None
    assert "dispatch/state.json" in git(repo, env, "show", "--name-only", "HEAD").stdout
    assert pre_commit(repo, env, "run", "--all-files").returncode == 0


def test_the_hook_manifest_is_valid_for_pre_commit() -> None:
    proc = run([tool("pre-commit"), "validate-manifest", ".pre-commit-hooks.yaml"], cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    hooks = {h["id"]: h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}
    assert hooks["reconcile-validate"]["entry"] == "reconcile validate"
    assert hooks["reconcile-guard-status"]["entry"] == "reconcile guard"
    for hook in hooks.values():
        assert hook["language"] == "python" and hook["pass_filenames"] is False


def test_sample_configs_are_valid_and_agree() -> None:
    """hooks/, the example and ``reconcile init`` hand out the same local hooks."""
    samples = [
        REPO / "hooks" / ".pre-commit-config.yaml",
        REPO / "examples" / "project" / ".pre-commit-config.yaml",
        REPO / "reconciler" / "scaffold" / "templates" / "pre-commit-config.yaml.tmpl",
    ]
    proc = run([tool("pre-commit"), "validate-config", *map(str, samples)], cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    parsed = [yaml.safe_load(p.read_text())["repos"] for p in samples]
    assert parsed[0] == parsed[1] == parsed[2]
    manifest = {h["id"]: h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}
    for hook in parsed[0][0]["hooks"]:
        assert hook["entry"] == manifest[hook["id"]]["entry"]
