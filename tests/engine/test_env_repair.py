"""The environment repair ladder (issue 18, item 4) on a real git project with a ``local`` target:
the check fails for a missing module, the target's ``env.repair`` commands run once for the commit
(recorded with their output in ``progress/env_<target>.json``), the check runs again; the runs go
ahead when it passes, and when it still fails the experiments are escalated and the ladder is not
run again for that commit (a new commit of the settings runs it again)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.engine.project import git, make_project, newest_entries, reconcile, until

CHECK = """python3 -c 'import needed_mod'"""
FIXES = ["mkdir -p shim", "printf 'X = 1\\n' > shim/needed_mod.py"]


def _project(tmp_path: Path, commands: list[str]) -> Path:
    proj = make_project(tmp_path, seeds=2)
    config = proj / "config" / "reconciler.yaml"
    text = config.read_text().replace(
        "    max_runs: 8\n",
        "    max_runs: 8\n"
        + textwrap.indent(
            json.dumps({"env": {"variables": {"PYTHONPATH": "shim"}, "repair": {"commands": commands}}})[1:-1].replace(
                '"env": ', "env: "
            )
            + "\n"
            + f"env_check: {{command: {json.dumps(CHECK)}}}\n",
            "    ",
        ),
    )
    config.write_text(text)
    git(proj, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "a target that needs repair")
    return proj


def _verdict(proj: Path) -> dict[str, object]:
    return json.loads(git(proj, "show", "HEAD:progress/env_local.json"))


def test_the_ladder_fixes_the_environment_once_and_the_runs_go_ahead(tmp_path: Path) -> None:
    proj = _project(tmp_path, FIXES)
    first = reconcile(proj, "--once")
    assert first.returncode in (0, 1), first.stdout + first.stderr
    verdict = _verdict(proj)
    assert verdict["status"] == "ENV_READY"
    repair = verdict["repair"]
    assert isinstance(repair, dict) and repair["ready"] is True
    assert repair["commit"] == verdict["checked_commit"]
    assert "No module named 'needed_mod'" in repair["reason"]
    assert [(s["command"], s["exit_code"]) for s in repair["steps"]] == [(c, 0) for c in FIXES]
    body = git(proj, "log", "-1", "--format=%B")
    assert "env local: ENV_READY" in body and "2 command(s) ran; fixed it" in body

    until(
        lambda: all(e["status"] == "done" for e in newest_entries(proj).values()), 60, lambda: reconcile(proj, "--once")
    )


def test_a_ladder_that_does_not_fix_it_escalates_and_is_not_run_again(tmp_path: Path) -> None:
    proj = _project(tmp_path, ["echo trying to fix it; exit 3", "echo never reached"])
    reconcile(proj, "--once")
    verdict = _verdict(proj)
    assert verdict["status"] == "ENV_FAILED"
    repair = verdict["repair"]
    assert isinstance(repair, dict) and repair["ready"] is False
    (step,) = repair["steps"]  # the ladder stops at the first command that fails
    assert step["exit_code"] == 3 and step["output"] == ["trying to fix it"]
    reconcile(proj, "--once")  # the first pass placed them before the check; this one sees the verdict
    entries = newest_entries(proj)
    for exp_id, entry in entries.items():
        assert entry["status"] == "pending"
        esc = entry["escalation"]
        assert esc["kind"] == "env" and esc["status"] == "open", exp_id
        assert "still fails after the repair ladder" in esc["reason"]
        assert (proj / "progress" / f"escalate_{exp_id}.md").is_file()
    ran_at = repair["at"]

    # the next pass and a person's env-check do not run the ladder again for this commit
    reconcile(proj, "--once")
    done = reconcile(proj, "env-check", "-C", str(proj))
    assert done.returncode == 1
    assert "still failing: fix it by hand (progress/env_local.json)" in done.stdout
    again = _verdict(proj)["repair"]
    assert isinstance(again, dict) and again["at"] == ran_at and len(again["steps"]) == 1

    # a commit that changes the target's settings (a working ladder) runs it again: fixed, placed,
    # and the escalations are closed
    config = proj / "config" / "reconciler.yaml"
    config.write_text(
        config.read_text().replace(
            '"commands": ["echo trying to fix it; exit 3", "echo never reached"]', json.dumps({"commands": FIXES})[1:-1]
        )
    )
    git(proj, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "a ladder that works")
    until(
        lambda: all(e["status"] == "done" for e in newest_entries(proj).values()), 60, lambda: reconcile(proj, "--once")
    )
    fixed = _verdict(proj)
    assert fixed["status"] == "ENV_READY" and fixed["repair"]["ready"] is True  # type: ignore[index]
    for entry in newest_entries(proj).values():
        assert entry["escalation"]["status"] == "closed"
        assert entry["escalation"]["resolution"] == "placed on local"
