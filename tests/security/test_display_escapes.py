"""A job's text on the terminal (issue 15, item 8): escape sequences and rich markup in notes,
waiting reasons, failure classes and targets print as visible text, never as control sequences."""

from __future__ import annotations

from pathlib import Path

from reconciler.model.escalation import Escalation
from reconciler.model.status import StateFile, Status, StatusEntry
from tests.engine.project import git, make_project, reconcile

STATE = "dispatch/state.json"
ESC = "\x1b]0;pwned\x07\x1b[2J\x1b[1;31mFAKE OK\x1b[0m"
"""Sets the window title, clears the screen, then prints in colour."""
MARKUP = "[bold red]markup[/bold red] [link=http://127.0.0.1/]x[/link]"
BIDI = "\u202egnp.exe"


def _commit_state(project: Path, entries: list[StatusEntry]) -> None:
    (project / STATE).write_text(StateFile(project="enginetest", entries=tuple(entries)).dumps())
    git(project, "add", STATE)
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", f"status\x1b[2J {ESC}")


def _hostile_entries() -> list[StatusEntry]:
    return [
        StatusEntry(id="job_s0", status=Status.FAILED, notes=f"attempt 1 failed\n{ESC} {MARKUP}", attempt=1),
        StatusEntry(id="job_s1", status=Status.PENDING, waiting_reason=f"{MARKUP} {BIDI} {ESC}"),
        StatusEntry(
            id="job_s2",
            status=Status.ON_HOLD,
            target=f"local{ESC}",
            failure_class=f"oom{ESC}",
            escalation=Escalation(reason=f"evidence {ESC} {MARKUP}", created="2026-01-01T00:00:00+00:00", needed="x"),
        ),
    ]


def test_status_prints_hostile_text_literally(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    _commit_state(project, _hostile_entries())
    shown = reconcile(project, "status", "-C", str(project), env={"COLUMNS": "400", "TERM": "xterm"})
    out = shown.stdout + shown.stderr
    assert shown.returncode == 1, out  # failed and on-hold runs need attention
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in out
    assert "[bold red]markup[/bold red]" in out  # printed as written, not rendered
    assert "\\u202egnp.exe" in out


def test_log_prints_hostile_text_literally(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    _commit_state(project, [StatusEntry(id="job_s2", status=Status.PENDING)])
    _commit_state(project, _hostile_entries())
    shown = reconcile(project, "log", "-C", str(project), "job_s2")
    out = shown.stdout + shown.stderr
    assert shown.returncode == 0, out
    assert "\x1b" not in out and "\x07" not in out
    assert "oom\\x1b]0;pwned\\x07" in out
    assert "local\\x1b]0;pwned" in out


def test_a_pass_prints_its_warnings_literally(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    (project / "dispatch" / f"evil{ESC}.yaml").write_text("version: 1\nexperiments: []\n")  # uncommitted
    for args in (("--once",), ("plan", "-C", str(project))):
        ran = reconcile(project, *args)
        assert "Traceback" not in ran.stderr, ran.stderr
        assert "\x1b" not in ran.stdout + ran.stderr
        assert "uncommitted changes will not run until committed: dispatch/evil\\x1b]0;pwned\\x07" in ran.stderr
