"""Hostile desired state from a collaborator (issue 15, items 6-8): ids with a trailing newline,
non-finite numbers, result paths outside the results folder, and the alias-bomb guard. Each is a
clear ``file:line:col: field: message``, exit 2, and a pass that changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reconciler.load.yamlpos import parse_yaml
from tests.engine.project import CONFIG, dispatch, git, launches, make_project, reconcile

DISPATCH = "dispatch/experiments.yaml"


def _commit_dispatch(project: Path, text: str) -> str:
    (project / DISPATCH).write_text(text)
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "hostile spec")
    return git(project, "rev-parse", "HEAD")


def _refused(project: Path, expected: str) -> None:
    """``validate`` and a pass both refuse with ``expected``; the pass commits and launches nothing."""
    head = git(project, "rev-parse", "HEAD")
    tracked = git(project, "ls-files", "-s")
    checked = reconcile(project, "validate", str(project))
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert expected in checked.stdout + checked.stderr
    assert "Traceback" not in checked.stderr
    ran = reconcile(project, "--once")
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert expected in ran.stderr
    assert "Traceback" not in ran.stderr
    assert "nothing was changed" in ran.stderr
    assert git(project, "rev-parse", "HEAD") == head
    assert git(project, "ls-files", "-s") == tracked
    assert git(project, "status", "--porcelain", "--untracked-files=no") == ""
    assert launches(project) == []


def test_an_id_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    text = dispatch(seeds=1).replace("  - id: job\n", '  - id: "abc\\n"\n')
    _commit_dispatch(project, text)
    _refused(project, "dispatch/experiments.yaml:8:5: experiments[0].id: 'abc\\n' is not a safe id")


def test_a_target_name_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    (project / "config/reconciler.yaml").write_text(CONFIG.replace("  local:\n", '  "local\\n":\n', 1))
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "hostile config")
    _refused(project, "config/reconciler.yaml:4:3: targets[\"local\\n\"]: 'local\\n' is not a safe name")


@pytest.mark.parametrize("value", [".nan", ".NaN", ".inf", "-.inf", "1.0e+999"])
def test_a_non_finite_number_is_refused(tmp_path: Path, value: str) -> None:
    project = make_project(tmp_path, seeds=1)
    text = dispatch(seeds=1).replace("  expected_duration_hours: 0.01\n", f"  expected_duration_hours: {value}\n")
    _commit_dispatch(project, text)
    _refused(
        project,
        "dispatch/experiments.yaml:4:3: defaults.expected_duration_hours: "
        f"{float(value.replace('.nan', 'nan').replace('.NaN', 'nan').replace('.inf', 'inf'))!r} "
        "is not a finite number (NaN and infinity are not allowed)",
    )


def test_a_huge_integer_is_refused(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    _commit_dispatch(project, dispatch(seeds=1).replace("  max_retries: 1\n", f"  max_retries: {10**30}\n"))
    _refused(project, "dispatch/experiments.yaml:6:3: defaults.max_retries: number too large")


@pytest.mark.parametrize(
    ("result_file", "message"),
    [
        (".gitignore", "'.gitignore' names a hidden file or folder ('.gitignore'), which results may not write to"),
        (
            ".reconciler/{exp_id}.csv",
            "'.reconciler/{exp_id}.csv' names a hidden file or folder ('.reconciler'), which results may not write to",
        ),
        (
            "experiments/r/.bashrc",
            "'experiments/r/.bashrc' names a hidden file or folder ('.bashrc'), which results may not write to",
        ),
        (
            "experiments/results/../../.gitignore",
            "'experiments/results/../../.gitignore' must be a normalised path (no '..', '.' or empty parts)",
        ),
        ("/abs/path/{exp_id}.csv", "'/abs/path/{exp_id}.csv' must be a relative path inside the project"),
        ("job.py", "'job.py' must be under experiments/results/ (where results land)"),
    ],
)
def test_a_result_file_outside_the_results_folder_is_refused(tmp_path: Path, result_file: str, message: str) -> None:
    project = make_project(tmp_path, seeds=1)
    before = (project / ".gitignore").read_bytes()
    _commit_dispatch(project, dispatch(seeds=1) + f"    result_file: {result_file}\n")
    _refused(project, f"dispatch/experiments.yaml:16:5: experiments[0].result_file: {message}")
    assert (project / ".gitignore").read_bytes() == before


@pytest.mark.slow  # a 100,000-experiment file: seconds; in the full tier
def test_a_large_file_without_aliases_loads() -> None:
    lines = ["version: 1", "experiments:"]
    lines += [f"  - {{id: e{i}, command: run, group: main}}" for i in range(100_000)]
    doc, problems = parse_yaml("\n".join(lines) + "\n", "dispatch/big.yaml")
    assert problems == []
    assert doc is not None
    assert len(doc.data["experiments"]) == 100_000


def test_an_alias_bomb_is_still_refused() -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    doc, problems = parse_yaml("\n".join(lines) + "\n", "dispatch/bomb.yaml")
    assert doc is None
    assert re.fullmatch(
        r"dispatch/bomb\.yaml:\d+:\d+: \(file\): invalid YAML: document too large: aliases expand to more than "
        r"200000 values \(an alias bomb\?\)",
        str(problems[0]),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[\n  {"id": "job", "group": NaN}\n]\n',
            "experiments/definitions.json:2:17: [0].group: nan is not a finite number",
        ),
        ('[\n  {"id": "job", "x": 1e999}\n]\n', "experiments/definitions.json:2:17: [0].x: inf is not a finite number"),
        ("[" * 100_000, "experiments/definitions.json:1:1: (file): invalid JSON: nested too deeply"),
        ("[1" + "0" * 5000 + "]", "definitions.json:1:1: (file): invalid JSON: a number with too many digits"),
    ],
)
def test_a_hostile_json_file_of_the_desired_state_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    project = make_project(tmp_path, seeds=1)
    (project / "experiments").mkdir()
    (project / "experiments/definitions.json").write_text(text)
    git(project, "add", "-A")
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "hostile definitions")
    _refused(project, expected)


def test_an_imported_seed_keeps_only_result_paths_under_the_results_folder() -> None:
    from reconciler.seedimport.specs import build_specs

    entries = [
        {"id": "a", "command": "python t.py --out .gitignore", "result_file": ".gitignore"},
        {"id": "b", "command": "python t.py --out R/b.csv", "result_file": "R/b.csv"},
    ]
    for entry in entries:
        entry["command"] = entry["command"].replace("R/", "experiments/results/")
        entry["result_file"] = entry["result_file"].replace("R/", "experiments/results/")
    specs = {s["id"]: s for s in build_specs(entries)}
    assert "result_file" not in specs["a"]  # the default, experiments/results/{exp_id}.csv
    assert specs["a"]["command"] == "python t.py --out {result_file}"
    assert specs["b"]["result_file"] == "experiments/results/{exp_id}.csv"
