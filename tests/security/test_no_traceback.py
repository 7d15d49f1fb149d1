"""No input ends in a traceback: an exception no boundary converted is named in one line, with
the frame of ours that raised it, and the command exits 3 having done nothing more, the traceback
written to ``.reconciler/crash.log`` (never on the screen); ``RECONCILER_DEBUG=1`` raises it. The
daemon reports it and goes on with the next pass."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from reconciler import watch
from reconciler.commands.common import EXIT_BUG, EXIT_STALLED, run_guarded
from tests.engine.project import make_project


def _buggy() -> int:
    return {"a": 1}["missing"]


def test_an_unconverted_exception_is_one_line_exit_3_and_the_traceback_goes_to_crash_log(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    project = make_project(tmp_path / "p")
    assert EXIT_BUG == 3
    assert run_guarded(_buggy, project_dir=project) == EXIT_BUG
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "internal error (a bug in reconciler, please report it): KeyError: 'missing'" in err
    assert "(at test_no_traceback.py:19, from common.py:" in err  # where it was raised, and our caller
    crash = project / ".reconciler" / "crash.log"
    assert f"the traceback is in {crash}" in err
    text = crash.read_text()
    assert "Traceback (most recent call last)" in text and "KeyError: 'missing'" in text
    assert not [line for line in (project / ".gitignore").read_text().splitlines() if line == "crash.log"]


def test_outside_a_project_the_traceback_goes_to_a_temp_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_guarded(_buggy) == EXIT_BUG
    err = capsys.readouterr().err
    assert "the traceback is in " in err and "reconciler-crash-" in err


def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_DEBUG", "1")
    with pytest.raises(KeyError):
        run_guarded(_buggy)


def test_an_os_error_of_the_controller_is_an_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    def full() -> int:
        raise OSError(errno.ENOSPC, "No space left on device", "/x/dispatch/state.json")

    assert run_guarded(full) == EXIT_STALLED
    err = capsys.readouterr().err
    assert err.startswith("error: [Errno 28] No space left on device: '/x/dispatch/state.json'")
    assert "Traceback" not in err


def test_hostile_text_in_the_message_is_printed_literally(capsys: pytest.CaptureFixture[str]) -> None:
    def hostile() -> int:
        raise ValueError("\x1b]0;owned\x07\x1b[2J")

    assert run_guarded(hostile) == EXIT_BUG
    assert "\x1b" not in capsys.readouterr().err


def test_the_daemon_reports_a_bug_in_a_pass_and_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path / "p")

    def buggy_pass(project: Path, log: object = None) -> object:
        raise RecursionError("maximum recursion depth exceeded")

    lines: list[str] = []
    monkeypatch.setattr(watch, "reconcile_once", buggy_pass)
    _interval, settled, _counts = watch._one(project, lines.append)
    assert settled is None
    assert len(lines) == 1
    assert "pass failed with an internal error (a bug, please report it): RecursionError" in lines[0]
