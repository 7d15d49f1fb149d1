"""Read what the dashboard shows from the project's committed tree, one ``Snapshot`` per commit.

The desired state and the recorded status come from the commit HEAD points at (what a pass
reads, never a person's uncommitted edits); result CSVs and the last probe of each target come
from the project's disk (the reconciler writes the results before it commits them, and the
probe record is scratch it never commits), and so do the newest probe counters and job progress
(``.reconciler/volatile.json``: committed only with a transition). An invalid desired state does not stop the page:
the status is still shown, with the problems.

``SnapshotCache`` keeps the snapshot of the newest commit (rebuilt when the volatile values
change); ``live`` tells it when HEAD moved.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler import loadcache
from reconciler.errors import ReconcilerError, SchemaError
from reconciler.export.results import ResultFiles, read_result_rows
from reconciler.export.tables import TableView, derive_tables
from reconciler.gitstore.repo import ProjectRepo
from reconciler.gitstore.tree import GitTree
from reconciler.load import load_desired, parse_state
from reconciler.loadcache import paused_gc
from reconciler.model.desired import DesiredState
from reconciler.model.env import EnvVerdict
from reconciler.model.jsontext import loads_strict
from reconciler.model.status import StateFile, Status, StatusEntry
from reconciler.model.vram import VRAM_FILE, VramBook, VramEstimate
from reconciler.plan.vram import with_estimates
from reconciler.statestore import OBSERVED_DIR, OWNED, STATE, VOLATILE, current_state, env_path

PROBES_DIR = OBSERVED_DIR
"""Where the engine leaves each target's last probe (``<target>.json``, never committed)."""


@dataclass(frozen=True)
class Snapshot:
    """Everything the page shows, as of one commit."""

    project_dir: Path
    commit: str | None
    """HEAD's sha; ``None`` before the first commit."""
    committed_at: str
    desired: DesiredState | None
    problems: tuple[str, ...]
    """Why the desired state could not be loaded (``file:line:col: field: message``)."""
    state: StateFile
    verdicts: dict[str, EnvVerdict] = field(default_factory=dict)
    results: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    """The rows of the result CSV of each done run a design table can show
    (``reconciler.export.results.read_result_rows``); another run's file is read when its page
    asks (``result_files``): at 100,000 experiments reading every file was seconds per commit."""
    result_problems: dict[str, str] = field(default_factory=dict)
    """Those done runs whose result file is missing or invalid, and why."""
    tables: tuple[TableView, ...] = ()
    """The design tables with derived cells (``reconciler.export.tables``, shared with export)."""
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The last probe of each target, when the engine recorded one (see ``PROBES_DIR``)."""
    vram: dict[str, VramEstimate] = field(default_factory=dict)
    """Each experiment's VRAM estimate and its source, when the project has measurements
    (``experiments/vram.json``) or a ``vram_gb: probe`` spec (``plan.vram.with_estimates``)."""

    @property
    def project(self) -> str:
        if self.desired is not None:
            return self.desired.config.project
        return self.state.project or self.project_dir.name


def read_snapshot(project_dir: Path) -> Snapshot:
    """The snapshot of the commit HEAD points at now."""
    project_dir = project_dir.resolve()
    with ProjectRepo(project_dir) as repo:
        sha = repo.resolve_or_none("HEAD")
        if sha is None:
            return Snapshot(project_dir, None, "", None, ("the repository has no commit yet",), StateFile(project=""))
        when = repo.run("log", "-1", "--format=%cI", sha, what="git log -1")
        revision = repo.last_change(sha, exclude=OWNED)
        with GitTree(repo.handle, sha, prefix=repo.prefix) as tree, paused_gc():
            state, state_problem = _state(project_dir, tree)
            cached, problems = _desired(project_dir, tree, revision)
            # an archived phase's specs stay pickled (its experiments are counted from its record)
            desired = cached.desired(a.phase for a in state.archived) if cached is not None else None
            project = desired.config.project if desired else project_dir.name
            if state_problem is not None:
                problems = (*problems, state_problem)
            if not state.project:
                state = dataclasses.replace(state, project=project)
            targets = desired.config.target_names if desired else _env_targets(tree)
            verdicts = _verdicts(tree, targets)
            vram = _estimates(tree, desired)
    state = current_state(project_dir, state)  # the newest counters and progress (never committed)
    files = read_result_rows(project_dir, _in_tables(desired, state) if desired else ())
    return Snapshot(
        project_dir=project_dir,
        commit=sha,
        committed_at=when,
        desired=desired,
        problems=problems,
        state=state,
        verdicts=verdicts,
        results=files.rows,
        result_problems=files.problems,
        tables=tuple(derive_tables(desired, state, files.rows)) if desired and desired.designs else (),
        probes=_probes(project_dir, verdicts.keys() if desired is None else desired.config.target_names),
        vram=vram,
    )


_SEED_SUFFIX = re.compile(r"_s[0-9]+\Z")


def _in_tables(desired: DesiredState, state: StateFile) -> list[StatusEntry]:
    """The done entries a design cell can count: a superset of ``export.tables``' members of a cell
    (its ``exp_id`` itself, the experiments whose base id it is, ``<exp_id>_s<seed>``)."""
    cells = {c.exp_id for t in desired.designs for c in t.cells if c.exp_id}
    if not cells:
        return []
    via_spec = {s.id for s in desired.experiments if s.base_id in cells}
    return [
        e
        for e in state.entries
        if e.status is Status.DONE
        and (e.id in cells or e.id in via_spec or e.experiment_id in cells or _SEED_SUFFIX.sub("", e.id) in cells)
    ]


def result_files(s: Snapshot, exp_id: str) -> ResultFiles:
    """The result rows (or the problem) of one done run: from the snapshot when a design table
    made it read them, else read now (the experiment page of a run no table shows)."""
    if exp_id in s.results or exp_id in s.result_problems:
        rows, problem = s.results.get(exp_id), s.result_problems.get(exp_id)
        return ResultFiles({exp_id: rows} if rows is not None else {}, {exp_id: problem} if problem else {})
    entry = s.state.get(exp_id)
    if entry is None or entry.status is not Status.DONE:
        return ResultFiles()
    return read_result_rows(s.project_dir, [entry])


def _estimates(tree: GitTree, desired: DesiredState | None) -> dict[str, VramEstimate]:
    if desired is None:
        return {}
    try:
        data = tree.read_text(VRAM_FILE)
    except ReconcilerError:
        data = None
    return with_estimates(desired, VramBook.loads(data) if data else None)[1]


def _state(project_dir: Path, tree: GitTree) -> tuple[StateFile, str | None]:
    """The committed state (parsed once per content: ``loadcache``), or why it cannot be used."""
    try:
        data = tree.read_bytes(STATE)
        if data is None:
            return StateFile(project=""), None
        return loadcache.state(project_dir, data, lambda b: parse_state(b.decode("utf-8"), STATE)), None
    except (ReconcilerError, UnicodeDecodeError) as exc:
        return StateFile(project=""), str(exc)


def _desired(project_dir: Path, tree: GitTree, revision: str) -> tuple[loadcache.CachedDesired | None, tuple[str, ...]]:
    try:
        return loadcache.desired(project_dir, revision, lambda: load_desired(tree, revision=revision)), ()
    except SchemaError as exc:
        return None, tuple(str(p) for p in exc.problems)
    except ReconcilerError as exc:
        return None, (str(exc),)


def _env_targets(tree: GitTree) -> list[str]:
    names = tree.list("progress")
    return [n[len("env_") : -len(".json")] for n in names if n.startswith("env_") and n.endswith(".json")]


def _verdicts(tree: GitTree, targets: Iterable[str]) -> dict[str, EnvVerdict]:
    out: dict[str, EnvVerdict] = {}
    for name in targets:
        try:
            text = tree.read_text(env_path(name))
            if text:
                out[name] = EnvVerdict.from_dict(loads_strict(text))
        except (ReconcilerError, ValueError, TypeError, AttributeError):
            continue
    return out


def _probes(project_dir: Path, targets: Iterable[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in targets:
        try:
            doc = loads_strict((project_dir / PROBES_DIR / f"{name}.json").read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict):
            out[name] = doc
    return out


class SnapshotCache:
    """The newest snapshot, rebuilt when asked for a commit it does not hold (thread-safe)."""

    def __init__(self, project_dir: Path) -> None:
        self.project_dir = project_dir.resolve()
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._stamp: tuple[int, int] | None = None

    def get(self, commit: str | None = None) -> Snapshot:
        """The snapshot of ``commit`` (HEAD's sha as ``live`` last saw it); ``None``: reuse the
        cached one when there is one (and the volatile values did not change)."""
        with self._lock:
            current = self._snapshot
            stamp = volatile_stamp(self.project_dir)
            stale = current is None or stamp != self._stamp
            if stale or (commit is not None and current is not None and current.commit != commit):
                current = self._snapshot = read_snapshot(self.project_dir)
                self._stamp = stamp
            assert current is not None
            return current

    def invalidate(self) -> None:
        with self._lock:
            self._snapshot = None


def volatile_stamp(project_dir: Path) -> tuple[int, int] | None:
    """When and how big ``.reconciler/volatile.json`` is (``None``: there is none)."""
    try:
        st = (project_dir / VOLATILE).stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)
