"""Which failures are retried, and the words that say so (issue 14 items 6 and 11).

Every failure class is retried while automatic retries remain, unless a rule says ``retry:
false`` (built in: ``import_error``, ``disk_full``, ``invalid_result``, ``launch_error``,
``timeout``; or the project's ``policies.remediation``, or the experiment's ``remediation:``);
``reconcile status`` says why a failed experiment was not retried. A manual retry (``reconcile
resolve --retry``) is not an automatic one and is never called one. Real passes on the engine
tests' local project.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from reconciler.load.config import remediation_rules
from reconciler.plan.failure import IMPORT_ERROR, UNKNOWN, rule_for
from tests.engine.project import git, launches, make_project, reconcile, until

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

IMP = textwrap.dedent(
    """
    import os, sys
    if "--dry-run" in sys.argv:
        sys.exit(0)
    with open(os.environ["LAUNCH_LOG"], "a") as f:
        f.write(sys.argv[1] + "\\n")
    print("ModuleNotFoundError: No module named 'missing_pkg_for_retry_tests'", file=sys.stderr)
    sys.exit(1)
    """
)


def entries(project: Path) -> dict[str, dict[str, Any]]:
    path = project / "dispatch" / "state.json"
    if not path.exists():
        return {}
    return {e["id"]: e for e in json.loads(path.read_text())["experiments"]}


def settled(project: Path) -> bool:
    found = entries(project)
    return bool(found) and all(e["status"] in ("done", "failed", "cancelled") for e in found.values())


def once(project: Path) -> None:
    out = reconcile(project, "--once")
    assert out.returncode in (0, 1), out.stderr


def commit(project: Path, message: str) -> None:
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "add", "-A")
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", message)


def write_dispatch(project: Path, experiments: str) -> None:
    head = "version: 1\ndefaults:\n  phase: pilot\n  expected_duration_hours: 0.01\n  targets: [local]\n"
    (project / "dispatch" / "experiments.yaml").write_text(head + "experiments:\n" + textwrap.dedent(experiments))


def status_rows(project: Path) -> dict[str, str]:
    out = reconcile(project, "status", "--wide", "-C", str(project), env={"COLUMNS": "400"})
    return {line.split("│")[1].strip(): line for line in out.stdout.splitlines() if line.count("│") > 3}


def lab_log(project: Path) -> str:
    return (project / "progress" / "lab.log").read_text()


def test_an_ordinary_failure_is_retried_while_retries_remain(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    write_dispatch(
        project,
        """\
        - id: plain
          command: python3 job.py --exp {exp_id} --out {result_file} --fail 1
          max_retries: 2
        """,
    )
    commit(project, "exit 1, two retries")
    until(lambda: settled(project), step=lambda: once(project))
    e = entries(project)["plain"]
    assert (e["status"], e["attempt"], e["retry_count"]) == ("failed", 3, 2), e
    assert [a["failure_class"] for a in e["attempts"]] == ["unknown"] * 3
    assert launches(project) == ["plain"] * 3
    assert "no automatic retry left (2 of 2 automatic retries used)" in e["escalation"]["reason"]
    row = status_rows(project)["plain"]
    assert "2/2" in row and "no automatic retry left" in row, row
    log = lab_log(project)
    assert "automatic retry 1 of 2" in log and "automatic retry 2 of 2" in log, log


def test_a_class_that_is_not_retried_says_why_and_the_rules_can_turn_it_on(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    (project / "imp.py").write_text(IMP)
    write_dispatch(
        project,
        """\
        - id: imp
          command: python3 imp.py {exp_id}
          max_retries: 2
        - id: imp_retry
          command: python3 imp.py {exp_id}
          max_retries: 1
          remediation:
            import_error: {retry: true}
        """,
    )
    commit(project, "import errors")
    until(lambda: settled(project), step=lambda: once(project))
    found = entries(project)
    imp, imp_retry = found["imp"], found["imp_retry"]
    assert (imp["status"], imp["attempt"], imp["failure_class"]) == ("failed", 1, "import_error"), imp
    assert (imp_retry["status"], imp_retry["attempt"], imp_retry["retry_count"]) == ("failed", 2, 1), imp_retry
    row = status_rows(project)["imp"]
    assert "0/2" in row, row
    assert "no automatic retry for import_error: the same code in the same environment fails the same" in row, row
    assert sorted(launches(project)) == ["imp", "imp_retry", "imp_retry"]


def test_the_project_policy_can_turn_off_retries_of_a_class(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    config = project / "config" / "reconciler.yaml"
    config.write_text(config.read_text() + "  remediation:\n    unknown: {retry: false}\n")
    write_dispatch(
        project,
        """\
        - id: plain
          command: python3 job.py --exp {exp_id} --out {result_file} --fail 1
          max_retries: 2
        """,
    )
    commit(project, "no retry for unknown failures")
    until(lambda: settled(project), step=lambda: once(project))
    e = entries(project)["plain"]
    assert (e["status"], e["attempt"]) == ("failed", 1), e
    assert "policies.remediation says retry: false" in status_rows(project)["plain"]


def test_a_manual_retry_is_never_called_an_automatic_one(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1, fail=1)  # max_retries: 1
    until(lambda: settled(project), step=lambda: once(project))
    assert (entries(project)["job_s0"]["attempt"], entries(project)["job_s0"]["retry_count"]) == (2, 1)

    out = reconcile(project, "resolve", "-C", str(project), "job_s0", "--retry")
    assert out.returncode == 0, out.stderr
    until(lambda: entries(project)["job_s0"]["attempt"] == 3, step=lambda: once(project))
    e = entries(project)["job_s0"]
    assert (e["retry_count"], e["manual_retries"]) == (1, 1), e
    log = lab_log(project)
    third = [line for line in log.splitlines() if "attempt 3" in line]
    assert third and all("manual retry 1 (decision; 1 of 1 automatic retries used)" in line for line in third), log
    assert "retry 1 of 1: attempt 3" not in log
    assert "1/1 +1 manual" in status_rows(project)["job_s0"]

    until(lambda: settled(project), step=lambda: once(project))
    e = entries(project)["job_s0"]
    assert (e["status"], e["attempt"]) == ("failed", 3), e  # one more attempt, as asked; no automatic one
    assert "no automatic retry left (1 of 1 automatic retries used)" in e["escalation"]["reason"]
    assert launches(project) == ["job_s0"] * 3


def test_a_rule_that_does_not_name_retry_keeps_the_level_below() -> None:
    project = remediation_rules({"import_error": {"env": {"A": "1"}}, "unknown": {"set_args": {"--x": "1"}}})
    assert rule_for(IMPORT_ERROR, (), project).retry is False  # built in: not retried
    assert rule_for(UNKNOWN, (), project).retry is True
    experiment = remediation_rules({"import_error": {"retry": True}})
    assert rule_for(IMPORT_ERROR, experiment, project).retry is True
    assert rule_for(IMPORT_ERROR, experiment, project).env == (("A", "1"),)
