"""GitHub workflow and action files, checked offline against the schemas vendored in check-jsonschema."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.example.tools import REPO, run, tool

TEMPLATE = REPO / "reconciler" / "scaffold" / "templates" / "workflow.yml.tmpl"
WORKFLOWS = sorted(
    [*(REPO / ".github" / "workflows").glob("*.yml"), *(REPO / "examples").glob("*/.github/workflows/*.yml"), TEMPLATE]
)
ACTIONS = sorted((REPO / ".github" / "actions").glob("*/action.yml"))


def check(schema: str, *files: Path):
    args = [tool("check-jsonschema"), "--builtin-schema", schema, "--default-filetype", "yaml"]
    return run([*args, *map(str, files)], cwd=REPO)


def test_there_is_something_to_check() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {"ci.yml", "reconcile.yml", "workflow.yml.tmpl"} <= names
    assert [p.parent.name for p in ACTIONS] == ["validate"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: str(p.relative_to(REPO)))
def test_workflow_matches_the_github_schema(path: Path) -> None:
    proc = check("vendor.github-workflows", path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", ACTIONS, ids=lambda p: str(p.relative_to(REPO)))
def test_action_matches_the_github_schema(path: Path) -> None:
    proc = check("vendor.github-actions", path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_checker_catches_mistakes(tmp_path: Path) -> None:
    bad_workflow = tmp_path / "bad.yml"
    bad_workflow.write_text("on: [pul_request]\njobs:\n  a: {runs-on: ubuntu-latest, steps: [{run: x}]}\n")
    assert check("vendor.github-workflows", bad_workflow).returncode == 1
    action = yaml.safe_load(ACTIONS[0].read_text())
    action["runs"]["using"] = "composit"
    bad_action = tmp_path / "action.yml"
    bad_action.write_text(yaml.safe_dump(action))
    assert check("vendor.github-actions", bad_action).returncode == 1


def test_the_validate_action_installs_its_own_checkout() -> None:
    action = yaml.safe_load(ACTIONS[0].read_text())
    assert set(action["inputs"]) == {"path", "python-version", "version"}
    assert action["inputs"]["path"]["default"] == "."
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    install = next(s for s in steps if s.get("name") == "install reconciler")
    assert install["env"]["ACTION_PATH"] == "${{ github.action_path }}"
    assert '"$ACTION_PATH/../../.."' in install["run"]
    # .github/actions/validate/../../.. is the repository root, where pyproject.toml is
    assert (ACTIONS[0].parent / ".." / ".." / ".." / "pyproject.toml").resolve() == REPO / "pyproject.toml"
    validate = next(s for s in steps if s.get("name") == "reconcile validate")
    assert validate["run"] == 'reconcile validate "$PROJECT_PATH"'


def test_project_workflows_install_reconciler_and_validate() -> None:
    for path in (REPO / "examples" / "project" / ".github" / "workflows" / "reconcile.yml", TEMPLATE):
        text = path.read_text()
        assert "your-org" not in text
        steps = yaml.safe_load(text)["jobs"]["validate"]["steps"]
        install = next(s for s in steps if s.get("name") == "install reconciler")
        assert "vars.RECONCILER_PIP_SPEC" in install["env"]["RECONCILER_PIP_SPEC"]
        assert steps[-1]["run"] == "reconcile validate ."


def test_ci_runs_lint_tests_and_workflow_checks() -> None:
    ci = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    assert {"lint", "tests", "workflows"} <= set(ci["jobs"])
    lint = " ".join(s.get("run", "") for s in ci["jobs"]["lint"]["steps"])
    for command in ("ruff check", "ruff format --check", "mypy", "lint-imports"):
        assert command in lint
    tests = " ".join(s.get("run", "") for s in ci["jobs"]["tests"]["steps"])
    assert "openssh-server" in tests and "rsync" in tests and ".ci/run" in tests
    assert "pip install -e '.[dev]'" in tests
