"""Provenance (design invariant 9, issue 14 item 2): what the state, the notes and a result row
say ran is what ran. A command edited while its run is live leaves the finished entry with the
command, spec hash and result of the run that happened, marked ``OutOfSync``; the new command
runs only when something starts a new attempt (here a ``retry`` decision), and then the entry
follows it. Real passes (``reconcile --once``) on the engine tests' local project."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.model.config import Policies
from reconciler.model.spec import ExperimentSpec
from reconciler.model.status import Attempt, Status
from reconciler.plan.entries import new_entry, sync
from tests.engine.project import dispatch, git, launches, make_project, reconcile, until
from tests.truth.provenance_invariant import provenance_violations, renders_to, wrapper_facts

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

EXP = "job_s0"
RUNS = Path(".reconciler/runs-local")


def state(project: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((project / "dispatch" / "state.json").read_text())
    return loaded


def entry(project: Path) -> dict[str, Any]:
    path = project / "dispatch" / "state.json"
    if not path.exists():
        return {}
    return next((e for e in state(project)["experiments"] if e["id"] == EXP), {})


def once(project: Path) -> None:
    out = reconcile(project, "--once")
    assert out.returncode in (0, 1), out.stderr


def check(project: Path) -> list[str]:
    return provenance_violations(
        project / "dispatch" / "state.json", {"local": project / RUNS}, project / "experiments" / "results"
    )


def edit_command(project: Path, old: str, new: str) -> None:
    path = project / "dispatch" / "experiments.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "change the command")


def result_value(project: Path) -> str:
    lines = (project / "experiments" / "results" / f"{EXP}.csv").read_text().splitlines()
    return lines[1].split(",")[6]


def test_a_command_edited_while_running_never_rewrites_the_finished_run(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1, sleep=3.0)
    once(project)
    first = entry(project)
    assert first["status"] == "running"
    old_command, old_hash, old_commit = first["command"], first["spec_hash"], first["git_commit"]
    assert "--value 0.25" not in old_command

    edit_command(project, "--sleep 3.0", "--sleep 3.0 --value 0.25")
    until(lambda: entry(project)["status"] == "done", step=lambda: once(project))
    once(project)  # the later passes the issue saw rewriting the entry
    head = git(project, "rev-parse", "HEAD")
    for _ in range(2):
        once(project)
    assert git(project, "rev-parse", "HEAD") == head  # and nothing changes, pass after pass

    done = entry(project)
    assert done["status"] == "done" and done["attempt"] == 1
    assert (done["command"], done["spec_hash"], done["git_commit"]) == (old_command, old_hash, old_commit)
    assert [c["type"] for c in done["conditions"]] == ["OutOfSync"]
    assert "--value 0.25" not in done["attempts"][0]["command"]
    assert result_value(project) == "0.9"  # the old command's result
    assert check(project) == []

    note = (project / "experiments" / "logs" / f"{EXP}.md").read_text()
    assert f"- Command: `{old_command}`" in note
    new_lines = [line for line in note.splitlines() if "--value 0.25" in line]
    assert new_lines and all(line.startswith("- Spec now (out of sync, not run yet):") for line in new_lines)

    shown = reconcile(project, "status", "-C", str(project))
    assert "outofsync" in shown.stdout

    # A person reruns it: the new attempt runs the new command, and the entry follows it.
    out = reconcile(project, "resolve", "-C", str(project), EXP, "--retry")
    assert out.returncode == 0, out.stderr
    until(lambda: entry(project)["attempt"] == 2 and entry(project)["status"] == "done", step=lambda: once(project))
    rerun = entry(project)
    assert "--value 0.25" in rerun["command"] and "--value 0.25" in rerun["attempts"][1]["command"]
    assert rerun["spec_hash"] != old_hash and rerun["conditions"] == []
    assert (rerun["retry_count"], rerun["manual_retries"]) == (0, 1)
    assert result_value(project) == "0.25"
    assert launches(project) == [EXP, EXP]
    assert check(project) == []


def test_a_pending_entry_takes_the_edited_command(tmp_path: Path) -> None:
    """Nothing ran yet: the next attempt runs the spec as it is now, and the entry says so."""
    project = make_project(tmp_path, seeds=1)
    (project / "dispatch" / "experiments.yaml").write_text(
        dispatch(1).replace("  - id: job\n", "  - id: job\n    state: hold\n")
    )
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "hold")
    once(project)
    assert entry(project)["status"] == "pending"
    held = (project / "dispatch" / "experiments.yaml").read_text()
    (project / "dispatch" / "experiments.yaml").write_text(
        held.replace("    state: hold\n", "").replace("--fail 0", "--fail 0 --value 0.5")
    )
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "edit and release")
    until(lambda: entry(project)["status"] == "done", step=lambda: once(project))
    e = entry(project)
    assert "--value 0.5" in e["command"] and e["conditions"] == []
    assert result_value(project) == "0.5"
    assert check(project) == []


def test_the_checker_reports_a_done_entry_that_claims_a_command_it_did_not_run(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    until(lambda: entry(project).get("status") == "done", step=lambda: once(project))
    assert check(project) == []
    doc = state(project)
    forged = next(e for e in doc["experiments"] if e["id"] == EXP)
    forged["command"] = forged["command"].replace("--sleep", "--never-ran --sleep")
    forged["attempts"][0]["command"] = forged["attempts"][0]["command"].replace("--sleep", "--never-ran --sleep")
    forged["git_commit"] = "0" * 40
    problems = provenance_violations(doc, {"local": project / RUNS})
    assert any("git_commit" in p for p in problems), problems
    assert any("its run dir ran" in p and "--never-ran" in p for p in problems), problems
    forged["attempts"][0]["target"] = "elsewhere"
    assert any("target 'local' is not attempt 1's 'elsewhere'" in p for p in provenance_violations(doc)), doc


def test_the_checker_reads_what_a_wrapper_ran() -> None:
    wrapper = (
        "cd /r/runs/x/1 || exit 111\n(\n  cd /r/code/abc123 || exit 112\n"
        "  export CUDA_VISIBLE_DEVICES=1,3\n  exec sh -c 'python3 t.py --out /r/runs/x/1/o.csv'\n)\n"
    )
    assert wrapper_facts(wrapper) == {
        "code_dir": "/r/code/abc123",
        "gpus": [1, 3],
        "command": "python3 t.py --out /r/runs/x/1/o.csv",
    }
    assert renders_to("python3 t.py --out {result_file}", "python3 t.py --out /r/runs/x/1/o.csv")
    assert not renders_to("python3 t.py --lr 1 --out {result_file}", "python3 t.py --out /r/runs/x/1/o.csv")


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.PENDING])
def test_an_entry_that_ran_keeps_its_command_when_the_spec_changes(status: Status) -> None:
    old = ExperimentSpec(id="a", base_id="a", command="python3 t.py --lr 1", source="d.yaml:1")
    new = ExperimentSpec(id="a", base_id="a", command="python3 t.py --lr 2", source="d.yaml:1")
    attempt = Attempt(n=1, target="local", command="python3 t.py --lr 1", run_dir="/r/runs/a/1", token="t")
    entry = dataclasses.replace(new_entry(old, Policies()), status=status, attempt=1, attempts=(attempt,))
    synced = sync(entry, new, Policies(), now_iso="2026-12-05T00:00:00+00:00")
    assert (synced.command, synced.spec_hash, synced.result_file) == (entry.command, old.spec_hash, entry.result_file)
    assert [c.type for c in synced.conditions] == ["OutOfSync"]
    assert sync(synced, new, Policies(), now_iso="2026-12-05T01:00:00+00:00") is synced  # no change, no commit


def test_a_pending_entry_follows_the_spec() -> None:
    old = ExperimentSpec(id="a", base_id="a", command="python3 t.py --lr 1", source="d.yaml:1")
    new = ExperimentSpec(id="a", base_id="a", command="python3 t.py --lr 2", source="d.yaml:1")
    synced = sync(new_entry(old, Policies()), new, Policies(), now_iso="")
    assert (synced.command, synced.spec_hash, synced.conditions) == (new.command, new.spec_hash, ())
