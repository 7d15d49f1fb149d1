"""The status files on the project's disk: ``dispatch/state.json`` (read with restore-from-git),
``progress/lab.log`` (append-only), the in-flight journal ``.reconciler/inflight.json``, and the
newest volatile values ``.reconciler/volatile.json`` (``reconciler.model.volatile``).

Called by the engine. The working-tree state is the newest truth (a pass may have written it and
died before committing); when it is missing or corrupt, the committed one is restored, and the
facts newer than it are re-observed from the targets.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from reconciler import loadcache
from reconciler.atomic import append_lines, atomic_write_text
from reconciler.confine import read_file
from reconciler.errors import UnsafePathError
from reconciler.model.archive import ARCHIVE_DIR
from reconciler.model.env import EnvVerdict
from reconciler.model.escalation import escalation_path
from reconciler.model.jsontext import loads_strict
from reconciler.model.observed import ObservedState
from reconciler.model.status import StateFile, Status, StatusEntry
from reconciler.model.volatile import Newest, merge
from reconciler.model.vram import VRAM_FILE, VramBook

STATE = "dispatch/state.json"
LAB_LOG = "progress/lab.log"
OWNED = (STATE, ARCHIVE_DIR, "progress", "experiments/results", "experiments/logs", VRAM_FILE)
VRAM_BYTES = 16 * 1024 * 1024
"""What the reconciler writes: commits touching only these are not a change of desired state."""
WRITTEN_DIRS = (
    "dispatch",
    ARCHIVE_DIR,
    "progress",
    "experiments",
    "experiments/results/**",
    "experiments/logs/**",
    ".reconciler",
    ".reconciler/cache",
)
"""Where the reconciler's writes land (``atomic.sweep_temp_files`` looks there for the temporary
files of a killed write; ``/**``: with subdirectories)."""
INFLIGHT = ".reconciler/inflight.json"
VOLATILE = ".reconciler/volatile.json"
"""The newest counters, progress and heartbeats that no commit holds yet (never committed)."""
CONFINED_DIRS = (
    ".reconciler",
    "dispatch",
    f"{ARCHIVE_DIR}/**",
    "progress/**",
    "experiments",
    "experiments/results/**",
    "experiments/logs/**",
)
"""The dirs a pass writes in, checked before it starts (``reconciler.confine.check_tree``): none of
them, and nothing below those marked ``/**``, may be a symlink."""
CONFINED_FILES = (
    STATE,
    LAB_LOG,
    INFLIGHT,
    VOLATILE,
    ".reconciler/.gitignore",
    ".reconciler/lock",
    ".reconciler/tmp",
    ".reconciler/observed/",
)


@dataclass(frozen=True)
class LoadedState:
    state: StateFile
    restored: str | None = None
    """Why the working-tree file was not used (missing, corrupt), when it was not."""


Versions = Callable[[], Iterable[tuple[str, bytes | None]]]
"""The committed versions of the state file, newest first: ``(commit, bytes)`` (``None``: absent)."""


def load_recorded(
    project_dir: Path, committed: str | bytes | None, project: str, versions: Versions | None = None
) -> LoadedState:
    """The recorded status: the working-tree file when it can be used, else the last commit's,
    else (``versions``) the newest older committed version that can be used: a committed bad
    state (not UTF-8, not JSON, an id or path the reconciler never writes) is walked past."""
    path = project_dir / STATE
    problem: str | None = None
    if path.exists():
        try:
            return LoadedState(loadcache.state(project_dir, path.read_bytes(), StateFile.loads))
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            problem = f"{STATE} is corrupt ({type(exc).__name__}: {exc})"
    elif committed:
        problem = f"{STATE} is missing"
    if not committed:
        return LoadedState(StateFile(project=project), problem and f"{problem}; starting empty")
    try:
        return LoadedState(StateFile.loads(committed), f"{problem}; restored from the last commit")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        head = f"{type(exc).__name__}: {exc}"
    for sha, older in versions() if versions is not None else ():
        if not older or older == committed or (isinstance(committed, str) and older == committed.encode()):
            continue
        try:
            state = StateFile.loads(older)
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
        return LoadedState(state, f"{problem}; the last commit's is corrupt too ({head}); restored from {sha[:10]}")
    empty = StateFile(project=project)
    return LoadedState(empty, f"{problem}; the committed one is corrupt too ({head}); starting empty")


def write_state(project_dir: Path, state: StateFile) -> None:
    text, data = state.encoded()
    atomic_write_text(project_dir / STATE, text)
    # what the next pass would parse, built from the same document now (it reads it from the cache)
    loadcache.remember_state(project_dir, text.encode("utf-8"), lambda: StateFile.checked(data))


def append_log(project_dir: Path, lines: Iterable[str]) -> None:
    append_lines(project_dir / LAB_LOG, lines)


def read_volatile(project_dir: Path) -> Newest:
    """The newest volatile values per experiment; empty when the file is missing or unreadable
    (the counters then go on from the committed values)."""
    try:
        raw = json.loads((project_dir / VOLATILE).read_text(encoding="utf-8"))
        out: Newest = {}
        for exp_id, item in raw["entries"].items():
            if isinstance(item, dict) and isinstance(item.get("attempt"), int) and _valid_volatile(item.get("values")):
                out[str(exp_id)] = (item["attempt"], item["values"])
        return out
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def _valid_volatile(values: object) -> bool:
    """Counters are whole numbers and the sidecar an object: anything else is not ours (skipped)."""
    if not isinstance(values, dict):
        return False
    counters = values.get("unreachable", {})
    if not isinstance(counters, dict) or not isinstance(values.get("sidecar", {}), dict):
        return False
    return all(isinstance(v, int) and not isinstance(v, bool) for v in counters.values())


def write_volatile(project_dir: Path, newest: Newest, updated: str) -> None:
    """Replace ``.reconciler/volatile.json`` (removed when nothing is newer than the commit)."""
    path = project_dir / VOLATILE
    if not newest:
        path.unlink(missing_ok=True)
        return
    entries = {k: {"attempt": n, "values": v} for k, (n, v) in sorted(newest.items())}
    try:  # unchanged values: the file (and its time, which the dashboard watches) stays as it is
        if json.loads(path.read_text(encoding="utf-8")).get("entries") == entries:
            return
    except (OSError, ValueError, AttributeError):
        pass
    atomic_write_text(path, json.dumps({"updated": updated, "entries": entries}, sort_keys=True) + "\n")


def current_state(project_dir: Path, committed: StateFile) -> StateFile:
    """``committed`` with the newest volatile values the last pass kept (what ``reconcile
    status`` and the dashboard show)."""
    return merge(committed, read_volatile(project_dir))


def read_inflight(project_dir: Path) -> list[tuple[str, int, str]]:
    path = project_dir / INFLIGHT
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return [(str(e), int(n), str(t)) for e, n, t in raw]
    except (OSError, ValueError, TypeError):
        return []


def write_inflight(project_dir: Path, launches: Iterable[tuple[str, int, str]]) -> None:
    items = sorted(launches)
    path = project_dir / INFLIGHT
    if not items:
        path.unlink(missing_ok=True)
        return
    atomic_write_text(path, json.dumps(items) + "\n")


def env_path(target: str) -> str:
    return f"progress/env_{target}.json"


def read_env_verdicts(project_dir: Path, targets: Iterable[str]) -> dict[str, EnvVerdict]:
    """The last verdict of each target; an unreadable file counts as no verdict (checked again)."""
    out: dict[str, EnvVerdict] = {}
    for name in targets:
        try:
            out[name] = EnvVerdict.from_dict(loads_strict((project_dir / env_path(name)).read_bytes()))
        except (OSError, ValueError, TypeError, AttributeError):
            continue
    return out


def read_vram(project_dir: Path) -> VramBook:
    """The project's VRAM measurements (``experiments/vram.json``); none when it is absent or
    unreadable (placement then uses the specs' estimates)."""
    try:
        return VramBook.loads(read_file(project_dir, VRAM_FILE, VRAM_BYTES))
    except (OSError, ValueError, UnsafePathError):
        return VramBook()


def write_vram(project_dir: Path, book: VramBook) -> str:
    atomic_write_text(project_dir / VRAM_FILE, book.dumps())
    return VRAM_FILE


def write_env_verdict(project_dir: Path, verdict: EnvVerdict) -> str:
    path = env_path(verdict.target)
    atomic_write_text(project_dir / path, verdict.dumps())
    return path


def read_results(project_dir: Path, entries: Iterable[StatusEntry]) -> dict[str, dict[str, float]]:
    """Early stop's input: for each done entry, the mean ``value`` per ``metric`` of its result CSV
    (``experiments/results/<exp_id>.csv`` unless its ``result_file`` says otherwise). A missing or
    unreadable file, a path outside the project, or a row without a finite value is skipped."""
    root = project_dir.resolve()
    out: dict[str, dict[str, float]] = {}
    for entry in entries:
        if entry.status is not Status.DONE:
            continue
        path = (root / (entry.result_path)).resolve()
        if not path.is_relative_to(root):
            continue
        try:
            means = _metric_means(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
        if means:
            out[entry.id] = means
    return out


def _metric_means(text: str) -> dict[str, float]:
    values: dict[str, list[float]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        try:
            value = float(row.get("value") or "")
        except ValueError:
            continue
        metric = (row.get("metric") or "").strip()
        if metric and math.isfinite(value):
            values.setdefault(metric, []).append(value)
    return {m: sum(v) / len(v) for m, v in sorted(values.items())}


def owned_files(project_dir: Path, state: StateFile, targets: Iterable[str]) -> list[str]:
    """Every reconciler-owned file that exists now: results of done runs, escalations, env
    verdicts, VRAM measurements. A pass commits them all, so what an interrupted pass wrote is committed by the next
    (only a real difference makes a commit)."""
    paths = [e.result_file for e in state.entries if e.status.value == "done" and e.result_file]
    paths += [escalation_path(e.id) for e in state.entries if e.escalation is not None]
    paths += [env_path(t) for t in targets]
    paths += [f"experiments/logs/{e.id}.md" for e in state.entries if e.attempt > 0]
    paths.append(VRAM_FILE)  # measurements of probe-vram and of runs over their reservations
    return sorted({p for p in paths if (project_dir / p).is_file()})


OBSERVED_DIR = ".reconciler/observed"
"""Each target's last probe as ``<target>.json`` (for the dashboard's GPU view; never committed:
it changes every pass, and an idle pass must not make a commit)."""


def write_observations(project_dir: Path, observed: ObservedState, observed_at: str) -> None:
    """Record what each target's probe saw (GPUs, host, free disk), atomically, one file per target."""
    for name, obs in observed.targets.items():
        doc = {
            "target": name,
            "observed_at": observed_at,
            "reachable": obs.reachable,
            "error": obs.error,
            "host": obs.host,
            "free_disk_gb": obs.free_disk_gb,
            "gpus": None if obs.gpus is None else [dataclasses.asdict(g) for g in obs.gpus],
        }
        atomic_write_text(project_dir / OBSERVED_DIR / f"{name}.json", json.dumps(doc, indent=1) + "\n")
