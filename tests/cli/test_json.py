"""Every command's ``--json`` output validated against its schema (``schemas/cli/<command>.schema.json``),
on the example project driven to the end for real (local target, real git, real passes); stdout
holds only the JSON document, and an error is one JSON object on stderr (``error.schema.json``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

from reconciler.schemas import schema_dir
from tests.example.tools import copy_example, git_env, tool
from tests.projectkit import commit_project

SEED_FIXTURE = Path(__file__).resolve().parents[1] / "scaffold" / "fixtures" / "seed_project"


def _registry() -> Registry:
    resources = []
    for path in [*schema_dir().glob("*.schema.json"), *(schema_dir() / "cli").glob("*.schema.json")]:
        doc = json.loads(path.read_text())
        resources.append((doc["$id"], Resource.from_contents(doc)))
    return Registry().with_resources(resources)


REGISTRY = _registry()


def check(name: str, doc: Any) -> None:
    schema = json.loads((schema_dir() / "cli" / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator(schema, registry=REGISTRY).validate(doc)


def cli(project: Path, env: dict[str, str], *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [tool("reconcile"), *args], cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode in ok, f"reconcile {' '.join(args)} exited {done.returncode}: {done.stdout}{done.stderr}"
    return done


def doc_of(done: subprocess.CompletedProcess[str]) -> Any:
    """The one JSON document on stdout (nothing else printed there)."""
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("json")
    env = git_env(tmp)
    project = copy_example(tmp / "project")
    commit_project(project, {}, message="the example")
    done = cli(project, env, "wait", "*", "--drive", "--interval", "0.5", "--timeout", "240", "--json")
    check("wait", doc_of(done))
    assert doc_of(done)["outcome"] == "reached"
    yield project, env


def test_validate_plan_status(finished: tuple[Path, dict[str, str]]) -> None:
    project, env = finished
    check("validate", doc_of(cli(project, env, "validate", "--json")))
    plan = doc_of(cli(project, env, "plan", "--json"))
    check("plan", plan)
    assert plan["empty"] is True
    status = doc_of(cli(project, env, "status", "--json"))
    check("status", status)
    assert {e["status"] for e in status} == {"done"} and len(status) == 12
    health = doc_of(cli(project, env, "status", "--health", "--json", ok=(0, 1)))  # 1: stale (2 s polls)
    check("health", health)
    assert health["last"]["project"] == "example" and health["totals"]["passes"] >= 2
    filtered = doc_of(cli(project, env, "status", "--json", "--status", "done", "logreg_blobs_*"))
    check("status", filtered)
    assert sorted(e["id"] for e in filtered) == ["logreg_blobs_s0", "logreg_blobs_s1", "logreg_blobs_s2"]


def test_log_logs_env_check_export(finished: tuple[Path, dict[str, str]]) -> None:
    project, env = finished
    log = doc_of(cli(project, env, "log", "logreg_blobs_s0", "--json"))
    check("log", log)
    assert [t["to"] for t in log["transitions"]][-1] == "done"
    logs = doc_of(cli(project, env, "logs", "logreg_blobs_s0", "-n", "3", "--json"))
    check("logs", logs)
    assert logs["exit_code"] == 0 and len(logs["lines"]) == 3 and logs["lines"][-1].startswith("done: accuracy=")
    envs = doc_of(cli(project, env, "env-check", "--json"))
    check("env-check", envs)
    assert envs["targets"][0]["ready"] is True
    exported = doc_of(cli(project, env, "export", "--json", "--no-commit"))
    check("export", exported)
    assert exported["complete"] is True


def test_resolve_and_probe_vram(finished: tuple[Path, dict[str, str]]) -> None:
    project, env = finished
    resolved = doc_of(cli(project, env, "resolve", "logreg_blobs_s0", "--retry", "--note", "again", "--json"))
    check("resolve", resolved)
    assert resolved["decision"]["action"] == "retry" and resolved["commit"]
    probed = doc_of(cli(project, env, "probe-vram", "logreg_blobs", "--json", ok=(1,)))
    check("probe-vram", probed)
    assert probed["measurement"] is None and "has no GPU" in probed["line"]


def test_init_and_import_seed(tmp_path: Path) -> None:
    env = git_env(tmp_path)
    made = doc_of(cli(tmp_path, env, "init", str(tmp_path / "fresh"), "--json"))
    check("init", made)
    assert "config/reconciler.yaml" in made["written"]
    seed = Path(shutil.copytree(SEED_FIXTURE, tmp_path / "seed"))
    imported = doc_of(cli(tmp_path, env, "import-seed", "-C", str(seed), "--json"))
    check("import-seed", imported)
    assert imported["entries"] > 0 and "config/reconciler.yaml" in imported["written"]


@pytest.mark.parametrize(
    ("args", "code", "kind"),
    [
        (["status", "--json", "-C", "missing"], 2, "invalid"),
        (["log", "nosuch", "--json"], 2, "invalid"),
        (["status", "--json", "--no-such-option"], 2, "usage"),
        (["wait", "nosuch", "--json"], 2, "invalid"),
    ],
)
def test_errors_are_json_on_stderr(tmp_path: Path, args: list[str], code: int, kind: str) -> None:
    env = git_env(tmp_path)
    project = copy_example(tmp_path / "project")
    commit_project(project, {}, message="the example")
    done = cli(project, env, *args, ok=(code,))
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    error = json.loads(line)
    check("error", error)
    assert error["error"]["exit"] == code and error["error"]["kind"] == kind


def test_every_command_with_json_has_a_schema() -> None:
    import click

    from reconciler.cli import _COMMANDS, main

    ctx = click.Context(main)
    with_json = sorted(
        name
        for name in _COMMANDS
        if any(p.name == "as_json" for p in (main.get_command(ctx, name) or click.Command(name)).params)
    )
    have = sorted(p.name.removesuffix(".schema.json") for p in (schema_dir() / "cli").glob("*.schema.json"))
    missing = [name for name in with_json if name not in have]
    assert not missing, f"commands with --json but no schemas/cli/<name>.schema.json: {missing}"
    assert {"plan", "log", "logs", "wait", "env-check", "resolve", "init", "import-seed", "status", "validate"} <= set(
        with_json
    )
