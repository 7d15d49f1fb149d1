"""Committed symlinks never carry a write of ours out of the project (issue 15, item 1).

A collaborator commits ``experiments/results -> <somewhere>`` (or ``progress``, ``experiments/logs``,
``.reconciler``, ``experiments/results/r``): the pass refuses before it locks, launches or writes
(exit 2, the path and the link's target named), the outside dir stays byte-identical, nothing is
committed. The same check holds at write time, for a symlink swapped in during a pass."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.atomic import append_line, atomic_write_text
from reconciler.errors import UnsafePathError
from reconciler.lockfile import ProjectLock
from reconciler.model.status import StateFile
from reconciler.statestore import append_log, write_state
from tests.engine.project import dispatch, git, launches, make_project, reconcile

SENTINEL = b"# the victim's own file\nexport PATH=/usr/bin\n"


def snapshot(directory: Path) -> dict[str, bytes | str]:
    """Every entry below ``directory``: file bytes, link targets, dirs."""
    out: dict[str, bytes | str] = {}
    for top, dirs, files in os.walk(directory):
        for name in [*dirs, *files]:
            path = Path(top, name)
            rel = path.relative_to(directory).as_posix()
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = path.read_bytes()
    return out


def outside_dir(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / ".bashrc").write_bytes(SENTINEL)
    (outside / "victim.csv").write_bytes(SENTINEL)
    return outside


def commit_all(project: Path, message: str, *paths: str) -> None:
    git(project, "add", "-f", *paths)
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", message)


def commits(project: Path) -> int:
    return int(git(project, "rev-list", "--count", "HEAD"))


def assert_refused(project: Path, outside: Path, before: dict[str, bytes | str], count: int, named: str) -> None:
    ran = reconcile(project, "--once")
    assert "Traceback" not in ran.stderr, ran.stderr
    assert ran.returncode == 2, ran.stderr
    assert f"{named} is a symlink (to {outside}" in ran.stderr, ran.stderr
    assert "refusing to write outside the project" in ran.stderr
    assert snapshot(outside) == before
    assert commits(project) == count
    assert launches(project) == []
    assert not (project / "dispatch" / "state.json").exists()


@pytest.mark.parametrize(
    ("link", "points_to", "named"),
    [
        ("experiments/results", "", "experiments/results/"),
        ("progress", "", "progress/"),
        ("experiments/logs", "", "experiments/logs/"),
        (".reconciler", "", ".reconciler/"),
    ],
)
def test_a_committed_symlinked_owned_dir_stops_the_pass(tmp_path: Path, link: str, points_to: str, named: str) -> None:
    project = make_project(tmp_path, seeds=1)
    outside = outside_dir(tmp_path)
    (project / link).parent.mkdir(parents=True, exist_ok=True)
    (project / link).symlink_to(outside / points_to if points_to else outside)
    commit_all(project, f"{link} symlink", link)
    before, count = snapshot(outside), commits(project)
    assert_refused(project, outside, before, count, named)


def test_a_symlink_inside_the_results_dir_redirects_no_result(tmp_path: Path) -> None:
    """``experiments/results/r -> <outside>`` and ``result_file: experiments/results/r/victim.csv``:
    valid as a path, but the collector would overwrite the outside file."""
    project = make_project(tmp_path, seeds=1)
    result = "    result_file: experiments/results/r/victim.csv\n"
    spec = dispatch(seeds=1).replace("    group: main", result + "    group: main")
    (project / "dispatch" / "experiments.yaml").write_text(spec)
    outside = outside_dir(tmp_path)
    (project / "experiments" / "results").mkdir(parents=True)
    (project / "experiments" / "results" / "r").symlink_to(outside)
    commit_all(project, "results/r symlink", "experiments", "dispatch")
    before, count = snapshot(outside), commits(project)
    assert_refused(project, outside, before, count, "experiments/results/r/")


def test_the_issue_input_experiments_r_bashrc_writes_nothing(tmp_path: Path) -> None:
    """The issue's exact input: ``experiments/r -> <outside>``, ``result_file: experiments/r/.bashrc``."""
    project = make_project(tmp_path, seeds=1)
    spec = dispatch(seeds=1).replace("    group: main", "    result_file: experiments/r/.bashrc\n    group: main")
    (project / "dispatch" / "experiments.yaml").write_text(spec)
    outside = outside_dir(tmp_path)
    (project / "experiments").mkdir()
    (project / "experiments" / "r").symlink_to(outside)
    commit_all(project, "r symlink", "experiments", "dispatch")
    before, count = snapshot(outside), commits(project)
    ran = reconcile(project, "--once")
    assert ran.returncode == 2, ran.stderr
    assert "Traceback" not in ran.stderr
    assert snapshot(outside) == before
    assert commits(project) == count
    assert launches(project) == []


def test_a_symlinked_lab_log_file_is_refused(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    outside = outside_dir(tmp_path)
    (project / "progress").mkdir()
    (project / "progress" / "lab.log").symlink_to(outside / ".bashrc")
    commit_all(project, "lab.log symlink", "progress")
    before, count = snapshot(outside), commits(project)
    assert_refused(project, outside, before, count, "progress/lab.log")


# --- at write time: a symlink swapped in after the pass's early check -----------------------


@pytest.fixture
def swapped(tmp_path: Path) -> tuple[Path, Path]:
    project = tmp_path / "project"
    project.mkdir()
    git(project, "init", "-q")
    (project / ".reconciler").mkdir()
    (project / ".reconciler" / ".gitignore").write_text("*\n")
    return project, outside_dir(tmp_path)


@pytest.mark.parametrize("link", ["dispatch", "progress", "experiments/results", "experiments"])
def test_every_writer_refuses_a_symlink_swapped_in_during_the_pass(swapped: tuple[Path, Path], link: str) -> None:
    project, outside = swapped
    (project / link).parent.mkdir(parents=True, exist_ok=True)
    (project / link).symlink_to(outside)
    before = snapshot(outside)
    writes = {
        "dispatch": lambda: write_state(project, StateFile(project="p")),
        "progress": lambda: append_log(project, ["2026-01-01T00:00:00Z job_s0: pending -> running"]),
        "experiments/results": lambda: atomic_write_text(project / "experiments/results/victim.csv", "x\n"),
        "experiments": lambda: atomic_write_text(project / "experiments/logs/job_s0.md", "note\n"),
    }
    with pytest.raises(UnsafePathError, match=f"^{link}/ is a symlink \\(to {outside}\\): refusing to write outside"):
        writes[link]()
    assert snapshot(outside) == before
    assert list((project / ".reconciler").glob("tmp/*")) == []


def test_a_swapped_in_file_symlink_is_not_appended_to(swapped: tuple[Path, Path]) -> None:
    project, outside = swapped
    (project / "progress").mkdir()
    (project / "progress" / "lab.log").symlink_to(outside / ".bashrc")
    with pytest.raises(UnsafePathError, match=r"progress/lab\.log is a symlink"):
        append_line(project / "progress" / "lab.log", "line")
    with pytest.raises(UnsafePathError, match=r"progress/lab\.log is a symlink"):
        atomic_write_text(project / "progress" / "lab.log", "line\n")
    assert (outside / ".bashrc").read_bytes() == SENTINEL


def test_the_lock_is_not_taken_through_a_symlinked_scratch_dir(swapped: tuple[Path, Path]) -> None:
    project, outside = swapped
    (project / ".reconciler" / ".gitignore").unlink()
    (project / ".reconciler").rmdir()
    (project / ".reconciler").symlink_to(outside)
    before = snapshot(outside)
    with pytest.raises(UnsafePathError, match=r"^\.reconciler/ is a symlink"):
        ProjectLock(project).acquire()
    assert snapshot(outside) == before


def test_export_neither_reads_nor_writes_through_a_symlinked_results_dir(tmp_path: Path) -> None:
    """``reconcile export`` (no pass before it): ``experiments/results -> <outside>`` would put
    ``all_results.csv`` there and read the outside files as results."""
    project = make_project(tmp_path, seeds=1)
    outside = outside_dir(tmp_path)
    (project / "experiments").mkdir()
    (project / "experiments" / "results").symlink_to(outside)
    commit_all(project, "results symlink", "experiments")
    before, count = snapshot(outside), commits(project)
    ran = reconcile(project, "export", "--allow-partial", "-C", str(project))
    assert "Traceback" not in ran.stderr, ran.stderr
    assert ran.returncode == 2, ran.stderr
    assert f"experiments/results/ is a symlink (to {outside})" in ran.stderr
    assert snapshot(outside) == before
    assert commits(project) == count


def test_env_check_refuses_a_symlinked_progress_dir_before_asking_a_target(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    outside = outside_dir(tmp_path)
    (project / "progress").symlink_to(outside)
    commit_all(project, "progress symlink", "progress")
    before, count = snapshot(outside), commits(project)
    ran = reconcile(project, "env-check", "-C", str(project))
    assert "Traceback" not in ran.stderr, ran.stderr
    assert ran.returncode == 2, ran.stderr
    assert f"progress/ is a symlink (to {outside}): refusing to write outside the project" in ran.stderr
    assert snapshot(outside) == before
    assert commits(project) == count
    assert not (project / ".reconciler" / "runs-local").exists()  # no target was asked
