"""One reconcile pass, end to end: lock, load, observe, plan, apply, write, commit.

    committed desired state --load--> DesiredState
    targets --observe (one probe each)--> ObservedState
    (desired, recorded, observed, now) --make_plan (pure)--> Plan
    Plan --execute--> results --fold (pure)--> StateFile --write + commit--> git history

Called by ``reconcile --once``, by the watch loop and by ``reconcile plan`` (``dry_run``).
Invalid input stops the pass before any network or git write (``SchemaError``, exit 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from reconciler.apply.executor import execute
from reconciler.atomic import atomic_write_text
from reconciler.confine import check_tree
from reconciler.crashpoints import crash_point
from reconciler.errors import GitStoreError, StatusWriteError
from reconciler.export.notes import due_ids
from reconciler.gitstore.history import state_versions
from reconciler.gitstore.remote import pull_ff, push
from reconciler.gitstore.repo import ProjectRepo
from reconciler.gitstore.writer import commit_status
from reconciler.loadcache import paused_gc
from reconciler.model.actions import ActionResult, Launch
from reconciler.model.archive import ARCHIVE_DIR
from reconciler.model.desired import DesiredState
from reconciler.model.status import StateFile, Status, StatusEntry
from reconciler.model.volatile import merge
from reconciler.notify import OUTBOX, announce
from reconciler.observe.observer import observe
from reconciler.observe.request import probe_request
from reconciler.passarchive import Restored, bring_back, drop_restored, move_out, with_unsaved_archives
from reconciler.passfiles import PassFiles, write_pass_files
from reconciler.passhistory import no_replay, tag_phases
from reconciler.passmetrics import Stopwatch, record_pass
from reconciler.plan import Event, Plan, events, fold, make_plan, subject
from reconciler.plan.archive import live_desired, restored
from reconciler.plan.context import iso
from reconciler.runtime.bundle import append_to_tar as append_runtime_bundle
from reconciler.session import Locking, Session, open_project
from reconciler.statestore import (
    CONFINED_DIRS,
    CONFINED_FILES,
    LAB_LOG,
    STATE,
    append_log,
    load_recorded,
    owned_files,
    read_env_verdicts,
    read_inflight,
    read_results,
    read_volatile,
    read_vram,
    write_inflight,
    write_observations,
)
from reconciler.targets import KeptConnections, Runners, open_runners

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, repr=False)
class PassResult:
    """What one pass did; built once per stage (the commit and the push are added by ``_finish``
    with ``dataclasses.replace``), never changed after."""

    plan: Plan
    state: StateFile
    events: list[Event] = field(default_factory=list)
    results: list[ActionResult] = field(default_factory=list)
    commit: str | None = None
    warnings: tuple[str, ...] = ()
    push_failed: bool = False
    restored: bool = False
    """The working-tree state file was missing or corrupt and was rewritten from the last commit."""
    unreachable: dict[str, str] = field(default_factory=dict)
    """Targets that did not answer, with their error."""

    def __repr__(self) -> str:
        # Short on purpose: asyncio formats the coroutine's return value on some paths, and the
        # full dataclass text of a 10,000-experiment pass takes a second to build.
        return f"PassResult({len(self.state.entries)} entries, {len(self.events)} events, commit={self.commit})"

    @property
    def stalled(self) -> bool:
        """Something needs a person: a failed or held experiment, a silent target, a failed action."""
        attention = (Status.FAILED, Status.ON_HOLD, Status.UNREACHABLE)
        if any(e.status in attention for e in self.state.entries):
            return True
        failed_action = any(not r.ok and not r.temporary for r in self.results)
        return bool(self.unreachable) or failed_action or self.push_failed


def reconcile_once(
    project_dir: Path,
    *,
    dry_run: bool = False,
    pull: bool | None = None,
    push_changes: bool | None = None,
    clock: Clock = utcnow,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
    kept: KeptConnections | None = None,
) -> PassResult:
    """One pass over the project in ``project_dir``. ``dry_run`` plans and changes nothing.
    ``kept``: SSH connections kept open across passes (watch mode); else the pass opens its own."""
    project_dir = project_dir.resolve()
    # A project whose own dirs are symlinks is invalid input: refused before any lock, network
    # or write (exit 2); every write checks again (a symlink swapped in during the pass).
    check_tree(project_dir, CONFINED_DIRS, CONFINED_FILES)
    _ignore_scratch(project_dir)
    if dry_run:  # a dry run takes no lock, pulls and pushes nothing: it writes nothing
        pull = push_changes = False
    with open_project(project_dir, Locking.NONE if dry_run else Locking.TAKE) as session, paused_gc():
        return _pass(session, dry_run=dry_run, pull=pull, push_changes=push_changes, clock=clock, log=log, kept=kept)


def _ignore_scratch(project_dir: Path) -> None:
    """``.reconciler/`` (lock, in-flight journal, local runs) ignores itself, so it never shows up
    in ``git status`` or in a person's ``git add -A``, whatever the project's ``.gitignore`` says."""
    marker = project_dir / ".reconciler" / ".gitignore"
    if not os.path.lexists(marker):
        atomic_write_text(marker, "*\n")


def _pass(
    session: Session,
    *,
    dry_run: bool,
    pull: bool | None,
    push_changes: bool | None,
    clock: Clock,
    log: Callable[[str], None],
    kept: KeptConnections | None = None,
) -> PassResult:
    watch = Stopwatch()  # the pass's own metrics (``reconciler.passmetrics``)
    warnings: list[str] = []
    repo, project_dir = session.repo, session.project_dir
    tree, cached = session.cached_desired()
    settings = cached.base.config.git
    if pull if pull is not None else settings.pull:
        pull_ff(repo, settings.remote, settings.branch)
        tree, cached = session.cached_desired()
        session.check()  # what the pull brought
    config = cached.base.config
    # A local target's relative root (its run dirs) is in the project too.
    check_tree(project_dir, (), [t.root for t in config.targets if t.ssh is None and not t.root.startswith(("/", "~"))])
    crash_point("after_load")
    dirty = repo.dirty_paths(["config", "dispatch", "experiments"])
    dirty = [p for p in dirty if p != STATE and not p.startswith(("experiments/results/", f"{ARCHIVE_DIR}/"))]
    if dirty:
        warnings.append(
            "uncommitted changes will not run until committed: "
            + ", ".join(dirty[:5])
            + ("…" if len(dirty) > 5 else "")
        )
    # Bytes, not text: a committed state that is not UTF-8 is corrupt (restored), not an error.
    loaded = load_recorded(project_dir, tree.read_bytes(STATE), config.project, versions=lambda: state_versions(repo))
    if loaded.restored:
        warnings.append(loaded.restored)
    # The planner reads the committed values with the newest counters and progress laid over
    # them (``reconciler.model.volatile``): those change without a transition and are not committed.
    committed = loaded.state
    desired = cached.desired(a.phase for a in committed.archived)  # an archived phase's specs stay pickled
    back = bring_back(project_dir, tree.read_bytes, desired, committed, warnings)  # archived phases needed
    if back.phases:
        desired = cached.desired(a.phase for a in back.state.archived)
    recorded = merge(no_replay(repo, desired, back.state, warnings), read_volatile(project_dir))
    inflight = read_inflight(project_dir)
    for w in warnings:
        log(f"warning: {w}")
    watch.lap("load")
    with tempfile.TemporaryDirectory(prefix="reconciler-") as scratch:
        live = live_desired(desired, recorded)  # an archived phase's specs are not planned
        pass_io = _observe_apply(
            project_dir, repo, live, recorded, inflight, Path(scratch), dry_run, clock, warnings, watch, kept
        )
        result = kept.run(pass_io) if kept is not None else asyncio.run(pass_io)
    watch.lap("apply")  # its connections closed
    result = dataclasses.replace(result, restored=loaded.restored is not None)
    if dry_run:
        return result
    result = _finish(
        project_dir,
        repo,
        desired,
        committed,
        recorded,
        result,
        push_changes if push_changes is not None else settings.push,
        clock,
        log,
        back,
    )
    record_pass(project_dir, desired.config, result, watch, clock(), log)  # never fails the pass
    return result


async def _observe_apply(
    project_dir: Path,
    repo: ProjectRepo,
    desired: DesiredState,
    recorded: StateFile,
    inflight: list[tuple[str, int, str]],
    scratch: Path,
    dry_run: bool,
    clock: Clock,
    warnings: list[str],
    watch: Stopwatch,
    kept: KeptConnections | None = None,
) -> PassResult:
    """Observe and apply inside one event loop, so each SSH connection serves the whole pass
    (and the next ones, on the loop of ``kept``: its pool stays open)."""
    pool = await kept.pool(desired.config) if kept is not None else None
    runners = open_runners(desired.config, project_dir, read_only=dry_run, pool=pool)  # plan writes nothing
    try:
        return await _observe_apply_with(
            project_dir, repo, desired, recorded, inflight, runners, scratch, dry_run, clock, warnings, watch
        )
    finally:
        await runners.close()


async def _observe_apply_with(
    project_dir: Path,
    repo: ProjectRepo,
    desired: DesiredState,
    recorded: StateFile,
    inflight: list[tuple[str, int, str]],
    runners: Runners,
    scratch: Path,
    dry_run: bool,
    clock: Clock,
    warnings: list[str],
    watch: Stopwatch,
) -> PassResult:
    policies = desired.config.policies
    request = probe_request(recorded, desired, inflight)
    observed = await observe(
        runners.by_name,
        request.want,
        jobs=request.jobs,
        seed=request.seed,
        timeout=policies.command_timeout,
        concurrency=policies.probe_concurrency,
        stats=watch.probes,
    )
    watch.lap("observe")
    crash_point("after_observe")
    now = clock()
    if not dry_run:
        with contextlib.suppress(OSError):  # the dashboard's GPU view only; never fails a pass
            write_observations(project_dir, observed, iso(now))
    verdicts = read_env_verdicts(project_dir, desired.config.target_names)
    done_metrics = read_results(project_dir, _early_stop_peers(desired, recorded))  # early stop's input
    vram = read_vram(project_dir)
    plan = make_plan(desired, recorded, observed, now, inflight, env=verdicts, results=done_metrics, vram=vram)
    watch.lap("plan")
    unreachable = {n: t.error or "no answer" for n, t in sorted(observed.targets.items()) if not t.reachable}
    if dry_run:
        return PassResult(
            plan, plan.state, events(recorded, plan.state), warnings=tuple(warnings), unreachable=unreachable
        )
    launches = [(a.exp_id, a.attempt, a.target) for a in plan.actions if isinstance(a, Launch)]
    write_inflight(project_dir, [*inflight, *launches])

    archives: dict[str, Path] = {}

    def archive_for(commit: str) -> Path:
        if commit not in archives:
            archives[commit] = scratch / f"{commit}.tar"
            repo.archive(commit, archives[commit])
            append_runtime_bundle(archives[commit])
        return archives[commit]

    results = await execute(
        plan.actions, runners.by_name, archive_for, project_dir, env_timeout=policies.env_check_timeout
    )
    crash_point("after_apply")
    state = fold(plan, results, desired, clock())
    return PassResult(plan, state, events(recorded, state), results, warnings=tuple(warnings), unreachable=unreachable)


def _early_stop_peers(desired: DesiredState, recorded: StateFile) -> list[StatusEntry]:
    """The done entries early stop may compare: those sharing phase and dataset with a spec
    that has an early-stop rule (none without one, so an idle pass reads no result file)."""
    scopes = {(s.phase, s.dataset) for s in desired.experiments if s.early_stop is not None}
    if not scopes:
        return []
    return [e for e in recorded.entries if e.status is Status.DONE and (e.phase, e.dataset) in scopes]


def _finish(
    project_dir: Path,
    repo: ProjectRepo,
    desired: DesiredState,
    committed: StateFile,
    recorded: StateFile,
    result: PassResult,
    push_changes: bool,
    clock: Clock,
    log: Callable[[str], None],
    back: Restored,
) -> PassResult:
    now = clock()
    try:
        minutes = desired.config.policies.progress_commit_minutes
        out = move_out(project_dir, desired, result.state, now)  # the archive files first
        written = write_pass_files(
            project_dir,
            committed,
            PassFiles(out.state, tuple(result.events), tuple(result.results), result.restored, result.plan.learned),
            now,
            minutes,
        )
        state, verdicts, env_lines, progress, vram_lines = written
        drop_restored(project_dir, back.phases, state)  # only once the state file holds them
        archive_lines = [*back.lines, *out.lines]
        append_log(project_dir, [f"{iso(now)} {line}" for line in archive_lines])
        seen = restored(state, {p: s.entries for p, s in out.moved.items()})  # this pass's view: all it saw
        notes: list[str] = []
        if due_ids(recorded, seen):  # the export modules are imported only when a note is due
            from reconciler.export.writer import pass_notes

            notes = pass_notes(project_dir, desired, recorded, seen)
    except OSError as exc:  # a full or read-only disk: nothing is committed, the next pass retries
        raise StatusWriteError(f"cannot write the status files in {project_dir}: {exc}") from exc
    report = announce(project_dir, recorded, seen, desired.config.notifications, os.environ, desired.config.project)
    warnings: list[str] = []
    for warning in [*report.warnings, *(f"notification via {c} failed: {e}" for c, e in report.failed.items())]:
        log(f"warning: {warning}")
        warnings.append(warning)
    crash_point("before_commit")
    owned = with_unsaved_archives(project_dir, repo, seen)  # a killed pass's archive: its results too
    paths = [STATE, LAB_LOG, *owned_files(project_dir, owned, desired.config.target_names), *notes]
    if state.archived or back.phases:
        paths.append(ARCHIVE_DIR)
    if (project_dir / OUTBOX).exists():
        paths.append(OUTBOX)
    body = "\n".join(
        [*(e.line for e in result.events), *(f"env {line}" for line in env_lines), *vram_lines, *archive_lines]
    )
    trailers = {"Desired-State": desired.revision or "working-tree"}
    title = subject(result.events) if result.events else "reconcile: record status"
    if progress and not result.events:
        title = "reconcile: record progress"
    if vram_lines and not result.events:
        title = "reconcile: record GPU memory over a reservation"
    if archive_lines and not result.events:
        title = "reconcile: " + "; ".join(line.split(" (")[0] for line in archive_lines[:3])
    if verdicts:
        env_part = "env " + ", ".join(f"{v.target} {'ready' if v.ready else 'failed'}" for v in verdicts)
        title = f"{title}; {env_part}" if result.events else f"reconcile: {env_part}"
    sha = commit_status(repo, paths, title, body, trailers, settings=desired.config.git)
    crash_point("after_commit")
    if sha:
        tag_phases(repo, desired, recorded, seen, sha)
    push_failed = False
    if push_changes:
        # Every pass pushes (a no-op when the remote has it all), so commits left by a pass whose
        # push failed go out with the next one. A failed push is reported, never fatal: the
        # status is committed locally and nothing is lost.
        try:
            push(repo, desired.config.git.remote, desired.config.git.branch)
        except GitStoreError as exc:
            log(f"warning: push failed, will retry on the next pass: {exc}")
            warnings.append(f"push failed: {exc}")
            push_failed = True
    return dataclasses.replace(
        result, state=state, commit=sha, warnings=(*result.warnings, *warnings), push_failed=push_failed
    )
