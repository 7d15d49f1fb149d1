"""Packing by bytes: past ``git.pack_loose_mib`` of loose objects a status commit starts a
background geometric repack (real git, real repositories)."""

from __future__ import annotations

import fcntl
import os
import random
import subprocess
import sys
from pathlib import Path

from reconciler.gitstore import ProjectRepo, commit_status
from reconciler.gitstore.packing import LOCK_NAME, keep_packed, loose_bytes, wait_for_repack
from reconciler.model.config import GitSettings
from tests.gitstore.gitcmd import git, init_repo, write

SMALL = GitSettings(pack_loose_mib=0.25)
"""A quarter MiB: three or four versions of the state file below."""


def counts(root: Path) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split(": ") for line in git(root, "count-objects", "-v").splitlines())}


def state_text(rows: list[str]) -> str:
    return '{"experiments": [\n' + ",\n".join(rows) + "\n]}\n"


def rows_of(n: int) -> list[str]:
    rng = random.Random(7)  # unique tokens: the file does not compress to nothing
    return [f'    {{"id": "e{i}_s0", "status": "pending", "token": "{rng.getrandbits(96):024x}"}}' for i in range(n)]


def commit_versions(root: Path, repo: ProjectRepo, rows: list[str], versions: range, settings: GitSettings) -> None:
    for n in versions:
        rows[n] = rows[n].replace("pending", "done")
        write(root, "dispatch/state.json", state_text(rows))
        assert commit_status(repo, ["dispatch/state.json"], f"reconcile: {n}", settings=settings)


def test_loose_bytes_past_the_threshold_are_packed_as_deltas_in_the_background(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo", {"dispatch/main.yaml": "version: 1\n"})
    rows = rows_of(4000)  # ~290 KB of JSON, ~95 KiB as a loose object
    with ProjectRepo(root) as repo:
        commit_versions(root, repo, rows, range(2), SMALL)
        assert counts(root)["packs"] == 0  # under a quarter MiB: nothing packed
        commit_versions(root, repo, rows, range(2, 12), SMALL)
        assert wait_for_repack(repo, timeout=60)
        commit_versions(root, repo, rows, range(12, 24), SMALL)
        assert wait_for_repack(repo, timeout=60)
        after = counts(root)
        objects = Path(repo.handle.common_dir) / "objects"
        # Never more than the threshold and the version that crossed it (plus the repack's lag).
        assert loose_bytes(objects) < 0.25 * 2**20 + 200 * 1024
    assert after["packs"] >= 1
    # 24 versions of a ~95 KiB (compressed) file: as deltas, the packs hold far less than copies.
    assert after["size-pack"] + after["size"] < 24 * 95 / 4, after
    git(root, "fsck", "--strict", "--no-progress")
    assert git(root, "show", "HEAD~23:dispatch/state.json").count('"done"') == 1
    assert git(root, "show", "HEAD:dispatch/state.json").count('"done"') == 24


def test_zero_leaves_packing_to_git(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo", {"dispatch/main.yaml": "version: 1\n"})
    rows = rows_of(4000)
    with ProjectRepo(root) as repo:
        commit_versions(root, repo, rows, range(8), GitSettings(pack_loose_mib=0))
        assert wait_for_repack(repo, timeout=60)
    assert counts(root)["packs"] == 0  # under git's own gc.auto count


def test_one_repack_at_a_time_and_never_beside_gc(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo", {"dispatch/main.yaml": "version: 1\n"})
    rows = rows_of(4000)
    with ProjectRepo(root) as repo:
        commit_versions(root, repo, rows, range(6), GitSettings(pack_loose_mib=0))
        common = Path(repo.handle.common_dir)
        # A repack of ours still running (another process holds the lock): nothing starts.
        with open(common / LOCK_NAME, "w") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            assert keep_packed(repo, 0.25) is False
            assert not wait_for_repack(repo, timeout=0.2)
        # Git's own gc running (a live pid in gc.pid): ours waits for a later pass.
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            (common / "gc.pid").write_text(f"{sleeper.pid} {os.uname().nodename}")
            assert keep_packed(repo, 0.25) is False
        finally:
            sleeper.kill()
            sleeper.wait()
        assert counts(root)["packs"] == 0
        # A stale gc.pid (its process gone) does not count.
        assert keep_packed(repo, 0.25) is True
        assert wait_for_repack(repo, timeout=60)
    assert counts(root)["packs"] == 1 and counts(root)["count"] == 0


def test_a_killed_repack_leaves_the_lock_free_and_the_repository_whole(tmp_path: Path) -> None:
    """The lock lives in the repack's inherited descriptor: a repack killed mid-way frees it (no
    stale pid file), and git's repack never deletes a loose object before its pack is written."""
    root = init_repo(tmp_path / "repo", {"dispatch/main.yaml": "version: 1\n"})
    rows = rows_of(20000)
    with ProjectRepo(root) as repo:
        commit_versions(root, repo, rows, range(4), GitSettings(pack_loose_mib=0))
        assert keep_packed(repo, 0.25) is True
        from reconciler.gitstore import packing

        proc = packing._started[-1]
        os.killpg(proc.pid, 9)
        proc.wait()
        assert wait_for_repack(repo, timeout=5)
        commit_versions(root, repo, rows, range(4, 6), SMALL)
        assert wait_for_repack(repo, timeout=60)
    git(root, "fsck", "--strict", "--no-progress")
    assert git(root, "show", "HEAD~5:dispatch/state.json").count('"done"') == 1


def test_packing_that_cannot_lock_or_start_never_fails_the_commit(tmp_path: Path) -> None:
    """Housekeeping after the commit: a lock path that cannot be opened (here a directory) or a
    repack that cannot start leaves the status commit made and reported, and git's gc in charge."""
    root = init_repo(tmp_path / "repo", {"dispatch/main.yaml": "version: 1\n"})
    rows = rows_of(4000)
    with ProjectRepo(root) as repo:
        lock = Path(repo.handle.common_dir) / LOCK_NAME
        lock.mkdir()
        commit_versions(root, repo, rows, range(4), SMALL)  # each commit_status returned its sha
        lock.rmdir()
        (Path(repo.handle.common_dir) / "reconciler-repack.log").mkdir()  # the log cannot be opened
        commit_versions(root, repo, rows, range(4, 6), SMALL)
        assert wait_for_repack(repo, timeout=5)
    assert counts(root)["packs"] == 0
    assert git(root, "show", "HEAD:dispatch/state.json").count('"done"') == 6
