"""What a pass reads from git history and adds to it beside its commit: the decisions a commit
listed as carried out before (never replayed), and a tag at the first dispatch of each phase."""

from __future__ import annotations

import dataclasses

from reconciler.gitstore.history import decisions_applied_before
from reconciler.gitstore.repo import ProjectRepo
from reconciler.gitstore.writer import tag
from reconciler.model.desired import DesiredState
from reconciler.model.status import StateFile
from reconciler.statestore import STATE


def no_replay(repo: ProjectRepo, desired: DesiredState, state: StateFile, warnings: list[str]) -> StateFile:
    """A decision is carried out once: one that a committed state listed as applied stays applied,
    whatever the state file says now (an id removed from ``decisions_applied`` replays nothing)."""
    pending = [d.id for d in desired.decisions if d.id not in state.decisions_applied]
    if not pending:
        return state
    before = decisions_applied_before(repo, pending)
    for decision, sha in sorted(before.items()):
        warnings.append(
            f"decision {decision} was carried out before (listed as applied in {sha[:10]}) but {STATE} "
            "no longer lists it: not carried out again"
        )
    if not before:
        return state
    return dataclasses.replace(state, decisions_applied=tuple(sorted({*state.decisions_applied, *before})))


def tag_phases(repo: ProjectRepo, desired: DesiredState, before: StateFile, after: StateFile, sha: str) -> None:
    """A tag marks the first dispatch of each phase: ``dispatch/<phase>``."""
    if not desired.config.git.tag_phases:
        return
    old = before.by_id()
    started_before = {e.phase for e in old.values() if e.attempt > 0}
    for entry in after.entries:
        if entry.attempt > 0 and entry.phase and entry.phase not in started_before:
            name = "dispatch/" + "".join(c if c.isalnum() or c in "._-" else "-" for c in entry.phase)
            tag(repo, name, sha, f"first dispatch of phase {entry.phase}", settings=desired.config.git)
            started_before.add(entry.phase)
