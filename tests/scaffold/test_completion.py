"""Shell completion callbacks (``reconciler.commands.complete``) on a real, committed project.

The callbacks are called directly with a hand-built click context, through click's own completion
machinery on a small command that attaches them, and through the installed ``reconcile`` script.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import pytest
from click.shell_completion import BashComplete, CompletionItem

from reconciler import scaffold
from reconciler.commands.common import project_option
from reconciler.commands.complete import experiment_ids, project_dir, target_names
from tests.example.tools import run, tool
from tests.projectkit import commit_project

SSH_TARGET = "  lab1:\n    kind: ssh\n    host: lab1\n    root: reconciler/demo\n"


def state(*ids: str) -> str:
    entries = [{"id": i, "status": "done"} for i in ids]
    return json.dumps({"version": 1, "project": "demo", "experiments": entries})


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """``reconcile init``'s project (experiment ``example``, seeds 0 and 1), one more target, committed;
    ``dispatch/state.json`` on disk also records an experiment that left the spec."""
    files = {f.path: f.text for f in scaffold.plan_init("demo")}
    files["config/reconciler.yaml"] = files["config/reconciler.yaml"].replace(
        "targets:\n", "targets:\n" + SSH_TARGET, 1
    )
    root = commit_project(tmp_path / "proj", files)
    (root / "dispatch" / "state.json").write_text(state("old_run", "example_s0"))
    return root


def context(root: Path | str | None) -> click.Context:
    ctx = click.Context(click.Command("log"))
    if root is not None:
        ctx.params["project_dir"] = Path(root)
    return ctx


def values(items: list[CompletionItem]) -> list[str]:
    return [item.value for item in items]


def test_experiment_ids_come_from_the_committed_spec_and_the_state(project: Path) -> None:
    items = experiment_ids(context(project), click.Argument(["exp_id"]), "")
    assert values(items) == ["example_s0", "example_s1", "old_run"]
    assert all(item.type == "plain" for item in items)


def test_only_ids_with_the_typed_prefix(project: Path) -> None:
    assert values(experiment_ids(context(project), click.Argument(["exp_id"]), "example_s")) == [
        "example_s0",
        "example_s1",
    ]
    assert values(experiment_ids(context(project), click.Argument(["exp_id"]), "old")) == ["old_run"]
    assert experiment_ids(context(project), click.Argument(["exp_id"]), "zzz") == []


def test_uncommitted_dispatch_entries_are_not_offered(project: Path) -> None:
    """Like a pass, completion reads the dispatch files as committed (HEAD)."""
    path = project / "dispatch" / "experiments.yaml"
    path.write_text(path.read_text().replace("id: example", "id: renamed"))
    assert values(experiment_ids(context(project), click.Argument(["exp_id"]), "")) == [
        "example_s0",
        "example_s1",
        "old_run",
    ]


def test_without_a_project_option_the_current_directory_is_used(project: Path, monkeypatch) -> None:
    monkeypatch.chdir(project)
    assert project_dir(context(None)) == Path(".")
    assert values(experiment_ids(context(None), click.Argument(["exp_id"]), "ex")) == ["example_s0", "example_s1"]
    assert values(target_names(context(None), click.Argument(["target"]), "")) == ["lab1", "local"]


def test_the_directory_given_to_the_group_is_used(project: Path) -> None:
    group = click.Context(click.Group("reconcile"))
    group.params["projects"] = (str(project),)
    sub = click.Context(click.Command("log"), parent=group)
    assert project_dir(sub) == project
    assert values(experiment_ids(sub, click.Argument(["exp_id"]), "old")) == ["old_run"]


def test_target_names_with_their_kind(project: Path) -> None:
    items = target_names(context(project), click.Argument(["target"]), "")
    assert [(i.value, i.help) for i in items] == [("lab1", "ssh"), ("local", "local")]
    assert values(target_names(context(project), click.Argument(["target"]), "la")) == ["lab1"]


def test_errors_give_no_completions(tmp_path: Path, project: Path) -> None:
    arg = click.Argument(["x"])
    missing = context(tmp_path / "missing")
    assert experiment_ids(missing, arg, "") == [] and target_names(missing, arg, "") == []
    # not a git repository: the state on disk still answers; no config: no targets
    loose = tmp_path / "loose"
    (loose / "dispatch").mkdir(parents=True)
    (loose / "dispatch" / "state.json").write_text(state("only_here"))
    assert values(experiment_ids(context(loose), arg, "")) == ["only_here"]
    assert target_names(context(loose), arg, "") == []
    # garbage everywhere
    (project / "dispatch" / "state.json").write_text("{not json")
    (project / "config" / "reconciler.yaml").write_text("targets: [unclosed\n")
    assert values(experiment_ids(context(project), arg, "")) == ["example_s0", "example_s1"]
    assert target_names(context(project), arg, "") == []
    (project / "config" / "reconciler.yaml").write_text("- a list\n")
    (project / "dispatch" / "state.json").write_bytes(b"\xff\xfe")
    assert target_names(context(project), arg, "") == []
    assert values(experiment_ids(context(project), arg, "")) == ["example_s0", "example_s1"]


def test_an_uncommitted_repository_gives_the_state_only(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    scaffold.write(root, scaffold.plan_init("demo"))
    run(["git", "init", "-q"], cwd=root)
    (root / "dispatch" / "state.json").write_text(state("recorded"))
    assert values(experiment_ids(context(root), click.Argument(["x"]), "")) == ["recorded"]


def test_click_completes_through_the_callbacks(project: Path) -> None:
    """Click's own machinery: options parsed before the word being completed reach the callbacks."""

    @click.command("probe")
    @project_option
    @click.argument("exp_id", shell_complete=experiment_ids)
    @click.argument("target", shell_complete=target_names)
    def probe(project_dir: Path, exp_id: str, target: str) -> None:
        raise AssertionError("completion never runs the command")

    complete = BashComplete(probe, {}, "probe", "_PROBE_COMPLETE")
    assert values(complete.get_completions(["-C", str(project)], "exa")) == ["example_s0", "example_s1"]
    assert values(complete.get_completions(["-C", str(project), "example_s0"], "l")) == ["lab1", "local"]


def test_the_installed_command_completes(project: Path) -> None:
    """``reconcile`` with click's completion variables, as the generated bash script runs it."""
    env = {**os.environ, "_RECONCILE_COMPLETE": "bash_complete", "COMP_WORDS": "reconcile lo", "COMP_CWORD": "1"}
    proc = run([tool("reconcile")], cwd=project, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["plain,log", "plain,logs"]
    for words in ("reconcile log ex", f"reconcile -C {project} log ex"):
        env.update(COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - 1))
        proc = run([tool("reconcile")], cwd=project.parent if "-C" in words else project, env=env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == ["plain,example_s0", "plain,example_s1"], words
