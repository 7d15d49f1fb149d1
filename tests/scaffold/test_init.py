"""``reconcile init``: a new project that validates, runs its stand-in experiment, and never
replaces a file without ``--force``."""

from __future__ import annotations

import csv
import re
import subprocess
from pathlib import Path
from typing import NamedTuple

import yaml
from click.testing import CliRunner

from reconciler import __version__, scaffold
from reconciler.commands.init import init as init_command
from tests.example.tools import REPO, RESULT_COLUMNS, expand_runs, run, tool

SCHEMA_LINE = re.compile(r"^# yaml-language-server: \$schema=(?P<path>\S+)$")


class Outcome(NamedTuple):
    returncode: int
    output: str


def init(*args: str) -> Outcome:
    """``reconcile init`` in this process (fast); ``reconcile validate`` still runs as a program."""
    result = CliRunner().invoke(init_command, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.output)


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_new_project_validates(tmp_path: Path) -> None:
    proc = init(str(tmp_path / "proj"), "--project", "demo")
    assert proc.returncode == 0, proc.output
    root = tmp_path / "proj"
    for path in scaffold.TEMPLATES:
        assert (root / path).is_file(), path
    assert yaml.safe_load((root / "config" / "reconciler.yaml").read_text())["project"] == "demo"
    assert sorted(p.name for p in (root / "config" / "schemas").iterdir()) == sorted(
        p.name for p in (REPO / "schemas").glob("*.schema.json")
    )
    valid = run([tool("reconcile"), "validate", str(root)], cwd=tmp_path)
    assert valid.returncode == 0, valid.stdout + valid.stderr


def test_schema_lines_point_at_the_copied_schemas(tmp_path: Path) -> None:
    assert init(str(tmp_path)).returncode == 0
    for rel, kind in [
        ("config/reconciler.yaml", "config"),
        ("dispatch/experiments.yaml", "dispatch"),
        ("dispatch/decisions.yaml", "decisions"),
    ]:
        match = SCHEMA_LINE.match((tmp_path / rel).read_text().splitlines()[0])
        assert match, rel
        assert match.group(0) == scaffold.schema_comment(kind, rel)
        target = (tmp_path / rel).parent / match["path"]
        assert target.resolve() == (tmp_path / "config" / "schemas" / f"{kind}.schema.json").resolve()
        assert target.read_text() == (REPO / "schemas" / f"{kind}.schema.json").read_text()


def test_default_project_name_comes_from_the_directory(tmp_path: Path) -> None:
    assert init(str(tmp_path / "My Study!")).returncode == 0
    config = yaml.safe_load((tmp_path / "My Study!" / "config" / "reconciler.yaml").read_text())
    assert config["project"] == "My-Study"


def test_existing_files_are_never_replaced_without_force(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "dispatch").mkdir(parents=True)
    (root / "dispatch" / "experiments.yaml").write_text("# mine\n")
    before = snapshot(root)
    proc = init(str(root))
    assert proc.returncode == 2
    assert "proj/dispatch/experiments.yaml exists" in proc.output
    assert snapshot(root) == before, "a refused init must write nothing"
    forced = init(str(root), "--force")
    assert forced.returncode == 0, forced.output
    assert (root / "dispatch" / "experiments.yaml").read_text() != "# mine\n"


def test_gitignore_lines_are_merged_once(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("data/\n__pycache__/")
    assert init(str(tmp_path)).returncode == 0
    lines = (tmp_path / ".gitignore").read_text().splitlines()
    assert lines[:2] == ["data/", "__pycache__/"]
    assert ".reconciler/" in lines and lines.count("__pycache__/") == 1
    text = (tmp_path / ".gitignore").read_text()
    assert scaffold.gitignore_merge(text, scaffold.template("gitignore.tmpl")) == text


def test_invalid_project_name_is_refused(tmp_path: Path) -> None:
    proc = init(str(tmp_path), "--project", "bad name")
    assert proc.returncode == 2 and "invalid project name" in proc.output
    assert list(tmp_path.iterdir()) == []


def test_the_stand_in_experiment_runs_and_writes_the_canonical_csv(tmp_path: Path) -> None:
    assert init(str(tmp_path)).returncode == 0
    for spec in expand_runs(tmp_path / "dispatch" / "experiments.yaml"):
        command = spec.render(spec.command, str(tmp_path / "ckpt"))
        proc = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        with (tmp_path / spec.result_path).open(newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
        assert reader.fieldnames == RESULT_COLUMNS
        assert rows[0]["exp_id"] == spec.id and rows[0]["seed"] == str(spec.seed)


def test_templates_ship_inside_the_package() -> None:
    """The wheel packs ``reconciler/``; every template must live there and be read through it."""
    folder = Path(scaffold.__file__).parent / "templates"
    for name in [*scaffold.TEMPLATES.values(), "gitignore.tmpl"]:
        assert (folder / name).is_file()
        assert scaffold.template(name)


def test_the_workflow_works_when_pushed_as_is(tmp_path: Path) -> None:
    """No placeholder to fill in: no ``your-org`` action, no token left, reconciler installed from PyPI
    under its distribution name (``reconciler`` there is another project), pinned to this release."""
    assert init(str(tmp_path)).returncode == 0
    for rel, text in snapshot(tmp_path).items():
        assert "your-org" not in text, rel
        assert "__REQUIREMENT__" not in text and "__PROJECT__" not in text, rel
        assert "pip install reconciler" not in text, rel
    workflow = yaml.safe_load((tmp_path / ".github" / "workflows" / "reconcile.yml").read_text())
    steps = workflow["jobs"]["validate"]["steps"]
    assert [s["uses"] for s in steps if "uses" in s] == ["actions/checkout@v4", "actions/setup-python@v5"]
    install = next(s for s in steps if s.get("name") == "install reconciler")
    spec = install["env"]["RECONCILER_PIP_SPEC"]
    assert spec == f"${{{{ vars.RECONCILER_PIP_SPEC || '{scaffold.requirement()}' }}}}"
    assert scaffold.requirement() == f"gitops-reconciler=={__version__}"
    assert '"$RECONCILER_PIP_SPEC"' in install["run"] and "pip install" in install["run"]
    assert steps[-1]["run"] == "reconcile validate ."
    hooks = (tmp_path / ".pre-commit-config.yaml").read_text()
    assert f"additional_dependencies: [gitops-reconciler=={__version__}]" in hooks


def test_a_development_build_asks_for_the_newest_release() -> None:
    assert scaffold.requirement("1.2.3") == "gitops-reconciler==1.2.3"
    for version in ("0.2.0.dev1", "0.1.0+local", "1.0rc1"):
        assert scaffold.requirement(version) == "gitops-reconciler"
