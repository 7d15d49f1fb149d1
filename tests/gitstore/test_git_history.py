"""experiment_history: transitions rebuilt from the commits of dispatch/state.json."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from reconciler.gitstore import ProjectRepo, Transition, Unreadable, commit_status, experiment_history
from reconciler.model.status import StateFile, Status, StatusEntry
from tests.gitstore.gitcmd import commit_files, git, init_repo, write

CMD = "python train.py --batch-size 64"


def _commit_state(repo: ProjectRepo, subject: str, *entries: StatusEntry) -> str:
    text = StateFile(project="p").with_entries(tuple(entries)).dumps()
    write(repo.project_dir, "dispatch/state.json", text)
    sha = commit_status(repo, ["dispatch/state.json"], subject)
    assert sha is not None
    return sha


def test_three_transitions_and_noise(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo", {"outer.txt": "o", "proj/dispatch/main.yaml": "m"})
    other = StatusEntry(id="other_s0", command="x")
    with ProjectRepo(root / "proj") as repo:
        pending = StatusEntry(id="a_s0", command=CMD)
        c1 = _commit_state(repo, "reconcile: plan a_s0", pending, other)
        running = dataclasses.replace(
            pending, status=Status.RUNNING, attempt=1, target="lab1", host="lab1", gpu=0, pid=42
        )
        c2 = _commit_state(repo, "reconcile: launch a_s0", running, other)
        # Only another experiment changes: no transition for a_s0.
        _commit_state(repo, "reconcile: other", running, dataclasses.replace(other, status=Status.RUNNING))
        commit_files(root, {"proj/dispatch/main.yaml": "m2"}, "person edits the spec")  # not in the log
        write(root, "proj/dispatch/state.json", "{ not json")
        git(root, "commit", "-qam", "someone broke it")
        failed = dataclasses.replace(
            running,
            status=Status.PENDING,
            retry_count=1,
            failure_class="cuda_oom",
            command="python train.py --batch-size 32",
        )
        c4 = _commit_state(
            repo, "reconcile: a_s0 failed (cuda_oom), retry", failed, dataclasses.replace(other, status=Status.RUNNING)
        )
        events = list(experiment_history(repo, "a_s0"))

    transitions = [e for e in events if isinstance(e, Transition)]
    unreadable = [e for e in events if isinstance(e, Unreadable)]
    assert [t.commit_sha for t in transitions] == [c1, c2, c4]
    first, launch, retry = transitions
    assert (first.from_status, first.to_status, first.attempt) == (None, Status.PENDING, 0)
    assert (launch.from_status, launch.to_status) == (Status.PENDING, Status.RUNNING)
    assert (launch.attempt, launch.target, launch.host, launch.gpu) == (1, "lab1", "lab1", 0)
    assert not launch.command_changed
    assert launch.message_line == "reconcile: launch a_s0"
    assert (retry.from_status, retry.to_status, retry.retry_count) == (Status.RUNNING, Status.PENDING, 1)
    assert retry.failure_class == "cuda_oom" and retry.command_changed
    assert "T" in retry.commit_time and retry.commit_time[-6] in "+-"
    assert len(unreadable) == 1 and "not a valid state file" in unreadable[0].reason
    assert unreadable[0].message_line == "someone broke it"


def test_removed_experiment_and_deleted_file(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "repo", {"a": "1"})
    with ProjectRepo(root) as repo:
        entry = StatusEntry(id="x", command="c")
        _commit_state(repo, "add", entry)
        (root / "dispatch/state.json").unlink()
        assert commit_status(repo, ["dispatch/state.json"], "deleted") is not None
        _commit_state(repo, "restored", entry)  # restore: no spurious transition
        gone = _commit_state(repo, "pruned", StatusEntry(id="y"))
        events = list(experiment_history(repo, "x"))
        assert list(experiment_history(repo, "never")) == [e for e in events if isinstance(e, Unreadable)]
    kinds = [(type(e).__name__, e.message_line) for e in events]
    assert kinds == [("Transition", "add"), ("Unreadable", "deleted"), ("Transition", "pruned")]
    last = events[-1]
    assert isinstance(last, Transition) and last.commit_sha == gone
    assert (last.from_status, last.to_status) == (Status.PENDING, None)
