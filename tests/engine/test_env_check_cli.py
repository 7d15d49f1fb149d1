"""``reconcile env-check`` on a real git project with a ``local`` target: the verdict file is
written, committed, and the exit code says whether every target is ready."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from reconciler.model.env import ENV_FAILED, ENV_READY
from tests.engine.project import git, make_project, reconcile

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

# Honours --dry-run (the engine tests' job.py runs for real whatever the flags); the config's
# env_check.command runs it with --dry-run (no experiment's command is used).
JOB = textwrap.dedent(
    """
    import sys
    if "--needs-missing" in sys.argv:
        import missing_pkg
    if "--dry-run" not in sys.argv:
        sys.exit("a dry run was expected")
    print("dry run ok")
    """
)


def project(tmp_path: Path, flags: str = "") -> Path:
    proj = make_project(tmp_path, seeds=2)
    (proj / "job.py").write_text(JOB)
    config = proj / "config" / "reconciler.yaml"
    config.write_text(config.read_text() + f"  env_check: {{command: 'python3 job.py --dry-run{flags}'}}\n")
    git(proj, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "dry-run aware job")
    return proj


def test_env_check_writes_and_commits_a_ready_verdict(tmp_path: Path) -> None:
    proj = project(tmp_path)
    desired = git(proj, "rev-parse", "HEAD")
    done = reconcile(proj, "env-check", "-C", str(proj))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("local: ENV_READY (python 3.")
    assert lines[0].endswith(")") and "gpus: " in lines[0]
    verdict = json.loads(git(proj, "show", "HEAD:progress/env_local.json"))
    assert verdict["status"] == ENV_READY and verdict["checked_commit"] == desired
    assert verdict["dry_run_passed"] is True and verdict["dry_run_command"] == "python3 job.py --dry-run"
    assert git(proj, "log", "-1", "--format=%s") == "reconcile: env check local ready"
    assert f"Desired-State: {desired}" in git(proj, "log", "-1", "--format=%B")
    assert not git(proj, "status", "--porcelain", "progress")
    assert not (proj / ".reconciler" / "runs-local" / "runs").exists()

    again = reconcile(proj, "env-check", "local", "-C", str(proj))  # same verdict but a new time
    assert again.returncode == 0, again.stderr


def test_env_check_with_a_missing_import_exits_1_and_says_why(tmp_path: Path) -> None:
    proj = project(tmp_path, flags=" --needs-missing")
    done = reconcile(proj, "env-check", "-C", str(proj))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "local: ENV_FAILED: ModuleNotFoundError: No module named 'missing_pkg'" in done.stdout
    verdict = json.loads((proj / "progress" / "env_local.json").read_text())
    assert verdict["status"] == ENV_FAILED and verdict["dry_run_passed"] is False
    assert verdict["evidence"][-1] == "ModuleNotFoundError: No module named 'missing_pkg'"
    assert git(proj, "log", "-1", "--format=%s") == "reconcile: env check local failed"


def test_env_check_of_an_unknown_target_is_invalid_input(tmp_path: Path) -> None:
    proj = project(tmp_path)
    done = reconcile(proj, "env-check", "nosuch", "-C", str(proj))
    assert done.returncode == 2
    assert "no target 'nosuch'" in done.stderr
    assert not (proj / "progress" / "env_nosuch.json").exists()
