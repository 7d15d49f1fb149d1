"""atomic_write_* and append_line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.atomic import append_line, atomic_write_bytes, atomic_write_text


def test_atomic_write_creates_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "dispatch" / "state.json"
    atomic_write_text(target, "one\n")
    assert target.read_text() == "one\n"
    atomic_write_bytes(target, b"two\n")
    assert target.read_bytes() == b"two\n"
    assert os.listdir(target.parent) == ["state.json"]


def test_atomic_write_keeps_an_existing_mode(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("x")
    target.chmod(0o640)
    atomic_write_text(target, "y")
    assert target.stat().st_mode & 0o777 == 0o640


def test_failed_replace_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "adir"
    (target / "child").mkdir(parents=True)
    with pytest.raises(OSError):
        atomic_write_text(target, "cannot replace a non-empty directory")
    assert sorted(os.listdir(tmp_path)) == ["adir"]


def test_append_line(tmp_path: Path) -> None:
    log = tmp_path / "progress" / "lab.log"
    append_line(log, "2026-01-01T00:00:00+00:00 a pending -> running")
    append_line(log, "second")
    assert log.read_text() == "2026-01-01T00:00:00+00:00 a pending -> running\nsecond\n"
    with pytest.raises(ValueError):
        append_line(log, "two\nlines")
    assert log.read_text().count("\n") == 2
