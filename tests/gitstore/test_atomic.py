"""atomic_write_* and append_line."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from reconciler.atomic import append_line, append_lines, atomic_write_bytes, atomic_write_text, dirs_synced_once


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


def test_append_lines_is_one_write_and_one_flush(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "lab.log"
    append_lines(log, ["first"])
    flushes: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (flushes.append(fd), real_fsync(fd))[1])
    append_lines(log, (f"line {i}" for i in range(3000)))
    assert len(flushes) == 1
    assert log.read_text().splitlines() == ["first", *(f"line {i}" for i in range(3000))]
    append_lines(log, [])
    assert len(flushes) == 1  # nothing to write: no open, no flush
    with pytest.raises(ValueError):
        append_lines(log, ["fine", "two\r\nlines"])
    assert log.read_text().count("\n") == 3001  # a bad line anywhere: nothing of the batch written


def test_dirs_synced_once_flushes_each_file_and_each_directory_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = tmp_path / "experiments" / "logs"
    other = tmp_path / "progress"
    flushed: list[tuple[bool, int]] = []  # (a directory?, inode)
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        flushed.append((stat.S_ISDIR(st.st_mode), st.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with dirs_synced_once():
        for i in range(50):
            atomic_write_text(notes / f"e{i}.md", f"note {i}\n")
        atomic_write_text(other / "a.json", "{}\n")
        with dirs_synced_once():  # nested: the outer one syncs
            atomic_write_text(other / "b.json", "{}\n")
        assert not any(is_dir for is_dir, _ in flushed)  # nothing of the directories yet
    files = [ino for is_dir, ino in flushed if not is_dir]
    dirs = [ino for is_dir, ino in flushed if is_dir]
    assert len(files) == 52
    assert sorted(dirs) == sorted({notes.stat().st_ino, other.stat().st_ino})
    assert (notes / "e49.md").read_text() == "note 49\n"
    flushed.clear()
    atomic_write_text(other / "c.json", "{}\n")  # outside: the directory at once, as always
    assert [is_dir for is_dir, _ in flushed] == [False, True]
