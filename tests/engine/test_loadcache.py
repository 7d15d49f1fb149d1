"""What a pass keeps for the next (``reconciler.loadcache``): a hit gives exactly what parsing
gives, a broken or foreign entry is a miss, and an entry is never read through a link."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

from reconciler import loadcache
from reconciler.model.status import StateFile, StatusEntry
from tests.engine.project import git, make_project, reconcile, until


def plan_json(project: Path) -> dict[str, object]:
    out = reconcile(project, "plan", "-C", str(project), "--json")
    assert out.returncode in (0, 1), out.stderr
    doc = json.loads(out.stdout)
    doc.pop("observed_at", None)
    return doc


def done(project: Path) -> bool:
    if not (project / "dispatch" / "state.json").exists():
        return False
    entries = json.loads((project / "dispatch" / "state.json").read_text())["experiments"]
    return bool(entries) and all(e["status"] == "done" for e in entries)


def test_a_kept_parse_plans_as_a_fresh_one_and_a_broken_entry_is_a_miss(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=2)
    until(lambda: done(project), step=lambda: reconcile(project, "--once"))
    cache = project / ".reconciler" / "cache"
    assert (cache / "desired.pickle").is_file() and (cache / "state.pickle").is_file()
    kept = plan_json(project)
    for name in ("desired.pickle", "state.pickle"):
        (cache / name).write_bytes(b"not a pickle")
    assert plan_json(project) == kept
    for name in ("desired.pickle", "state.pickle"):
        (cache / name).unlink()
    assert plan_json(project) == kept
    # a desired-state commit is a new revision: its spec is read, not the kept one
    dispatch = project / "dispatch" / "experiments.yaml"
    dispatch.write_text(dispatch.read_text().replace("seeds: [0, 1]", "seeds: [0, 1, 2]"))
    git(project, "commit", "-qam", "seed 2")
    until(lambda: done(project) and "job_s2" in (project / "dispatch" / "state.json").read_text(),
          step=lambda: reconcile(project, "--once"))  # fmt: skip


def test_a_linked_cache_entry_is_never_read(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    until(lambda: done(project), step=lambda: reconcile(project, "--once"))
    state_bytes = (project / "dispatch" / "state.json").read_bytes()
    real = StateFile.loads(state_bytes)
    forged = real.with_entries((*real.entries, StatusEntry(id="forged_s0")))
    outside = tmp_path / "forged.pickle"
    outside.write_bytes(pickle.dumps((loadcache._state_key(state_bytes), forged)))
    link = project / ".reconciler" / "cache" / "state.pickle"
    link.unlink()
    os.symlink(outside, link)
    loadcache._memory.clear()
    assert loadcache.state(project, state_bytes, StateFile.loads) == real  # the link is a miss
    out = reconcile(project, "status", "-C", str(project), "--json")
    assert "forged_s0" not in out.stdout
    # the same forged entry as our own file would be used: the cache is only as trusted as .reconciler/
    link.unlink()
    link.write_bytes(outside.read_bytes())
    loadcache._memory.clear()
    assert loadcache.state(project, state_bytes, StateFile.loads) == forged
