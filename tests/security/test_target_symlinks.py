"""A hostile job replaces its run dir's files with symlinks (issue 15, item 3): the probe reads only
regular files it owns, never through a link, so nothing the link points at (``/etc/shadow``) is
committed as failure evidence, shown as progress or taken as an exit code."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from reconciler.dashboard.actions import log_tail
from reconciler.load.desired import load_desired
from reconciler.model.status import StateFile
from tests.engine.project import git, make_project, reconcile, until
from tests.engine.test_ssh_target import killing_runs, make_ssh_project, passes_until
from tests.fixtures.sshd import SshdHost

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

SHADOW = Path("/etc/shadow")


def _shadow_lines() -> list[str]:
    try:
        return [line for line in SHADOW.read_text().splitlines() if line.strip()]
    except OSError:
        return []


def _use_dispatch(project: Path, command: str) -> None:
    (project / "dispatch" / "experiments.yaml").write_text(
        textwrap.dedent(
            f"""\
            version: 1
            defaults:
              phase: pilot
              expected_duration_hours: 0.01
              targets: [local]
              max_retries: 0
            experiments:
              - id: evil
                command: {json.dumps(command)}
                group: main
                method: m
                dataset: d
            """
        )
    )
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "evil job")


def _entry(project: Path) -> dict[str, object]:
    path = project / "dispatch" / "state.json"
    if not path.exists():
        return {}
    return next((e for e in json.loads(path.read_text())["experiments"] if e["id"] == "evil"), {})


def _everything_committed(project: Path) -> str:
    return git(project, "log", "-p", "--all", "--format=%H %s")


def _run_until_failed(project: Path) -> None:
    def step() -> None:
        ran = reconcile(project, "--once")
        assert "Traceback" not in ran.stderr, ran.stderr

    until(lambda: _entry(project).get("status") == "failed", step=step)


@pytest.mark.skipif(not _shadow_lines(), reason="/etc/shadow is not readable here")
def test_a_stdout_log_symlinked_to_etc_shadow_is_not_committed_as_evidence(tmp_path: Path) -> None:
    """The attack as seen: the job links its ``stdout.log`` to ``/etc/shadow`` and exits 1."""
    project = make_project(tmp_path, seeds=1)
    _use_dispatch(
        project, 'echo "Traceback: the real error"; ln -sf /etc/shadow "$RECONCILER_RUN_DIR/stdout.log"; exit 1'
    )
    _run_until_failed(project)
    escalation = project / "progress" / "escalate_evil.md"
    assert escalation.exists()
    committed = _everything_committed(project)
    tree = escalation.read_text() + (project / "dispatch" / "state.json").read_text()
    for line in _shadow_lines():
        assert line not in committed
        assert line not in tree
    run_dir = next((project / ".reconciler" / "runs-local" / "runs" / "evil").iterdir())
    assert (run_dir / "stdout.log").is_symlink()  # the attack did happen


def test_run_dir_files_linked_elsewhere_are_ignored(tmp_path: Path) -> None:
    """The same for ``status.json`` (a sidecar), ``exit_code`` and ``result_path``: a link to a
    file of the same user outside the run dir is not read."""
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"wandb_run_id": "SECRET-TOKEN-1234", "progress": 0.5}))
    project = make_project(tmp_path, seeds=1)
    _use_dispatch(
        project,
        f'ln -sf {secret} "$RECONCILER_RUN_DIR/status.json"; echo "Traceback: boom"; '
        f'ln -sf {secret} "$RECONCILER_RUN_DIR/stdout.log"; exit 1',
    )
    _run_until_failed(project)
    assert "SECRET-TOKEN-1234" not in _everything_committed(project)
    assert "SECRET-TOKEN-1234" not in (project / "dispatch" / "state.json").read_text()
    assert not any("SECRET-TOKEN-1234" in p.read_text() for p in (project / ".reconciler").glob("*.json"))
    assert os.path.islink(next((project / ".reconciler" / "runs-local" / "runs" / "evil").iterdir()) / "status.json")


@pytest.mark.skipif(not _shadow_lines(), reason="/etc/shadow is not readable here")
def test_the_dashboards_log_endpoint_does_not_follow_a_symlinked_log(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    until(lambda: _entry_of(project, "job_s0").get("status") == "done", step=lambda: reconcile(project, "--once"))
    run_dir = next((project / ".reconciler" / "runs-local" / "runs" / "job_s0").iterdir())
    (run_dir / "stdout.log").unlink()
    (run_dir / "stdout.log").symlink_to(SHADOW)
    state = StateFile.loads((project / "dispatch" / "state.json").read_text())
    entry = next(e for e in state.entries if e.id == "job_s0")
    answer = log_tail(project, load_desired(project).config, entry, None, 50)
    assert answer["ok"] is False and "not a regular file" in str(answer["error"])
    assert not any(line in json.dumps(answer) for line in _shadow_lines())


def _entry_of(project: Path, exp_id: str) -> dict[str, object]:
    path = project / "dispatch" / "state.json"
    if not path.exists():
        return {}
    return next((e for e in json.loads(path.read_text())["experiments"] if e["id"] == exp_id), {})


@pytest.mark.ssh
def test_over_ssh_a_stdout_log_symlinked_to_a_system_file_is_not_committed(
    sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path
) -> None:
    """The same attack on an SSH target (the job runs as the SSH user: ``/etc/shadow`` is not
    readable there, so it links ``/etc/passwd``, which is)."""
    project = make_ssh_project(tmp_path, sshd_hosts[0], rctest_dir, seeds=1, sleep=0.0)
    spec = (project / "dispatch" / "experiments.yaml").read_text()
    (project / "dispatch" / "experiments.yaml").write_text(
        spec.split("experiments:\n")[0].replace("max_retries: 1", "max_retries: 0")
        + "experiments:\n  - id: evil\n    command: "
        + json.dumps('echo "Traceback: boom"; ln -sf /etc/passwd "$RECONCILER_RUN_DIR/stdout.log"; exit 1')
        + "\n    group: main\n    method: m\n    dataset: d\n"
    )
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "evil job")
    with killing_runs(rctest_dir):
        passes_until(project, lambda s: s.get("evil") == "failed")
    committed = _everything_committed(project)
    assert (project / "progress" / "escalate_evil.md").exists()
    for line in Path("/etc/passwd").read_text().splitlines():
        if line.strip():
            assert line not in committed
