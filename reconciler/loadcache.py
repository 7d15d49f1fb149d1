"""What a pass parsed, kept for the next one (issue 20): the desired state by its revision, the
recorded state by the hash of its bytes, and the digests of the spec's phases
(``model.archive.spec_digest``) with the desired state they were computed from.

Watch mode keeps them in memory; ``reconcile --once`` from cron finds them in
``.reconciler/cache/`` (the reconciler's own directory: never committed, never a link, written
atomically). A cache entry names what it was made from (the reconciler's version and the source
of the models it holds, the revision or the bytes' hash); anything else, or a file that cannot be
read back, is a miss: the files are parsed as before. Only what was parsed and checked is kept,
so a hit gives exactly what parsing the same input gives.

The garbage collector is paused while a pass loads and plans (``paused_gc``): a load allocates
hundreds of thousands of objects with no cycles among them, and each collection it triggers walks
them all again (at 100,000 experiments that was half the load time).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import pickle
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reconciler import __version__
from reconciler.atomic import atomic_write_bytes
from reconciler.confine import read_file
from reconciler.errors import UnsafePathError
from reconciler.model.archive import spec_digest
from reconciler.model.desired import DesiredState
from reconciler.model.status import StateFile

CACHE_DIR = ".reconciler/cache"
_LIMIT = 1024 * 1024 * 1024
_MODELS = ("model/spec.py", "model/desired.py", "model/config.py", "model/status.py", "model/archive.py")


def _code() -> str:
    """The version and the source of the models a cache entry holds (a change is a miss)."""
    root = Path(__file__).parent
    h = hashlib.sha256(__version__.encode())
    for name in _MODELS:
        with contextlib.suppress(OSError):
            h.update((root / name).read_bytes())
    return h.hexdigest()[:16]


CODE = _code()

_memory: dict[tuple[str, str], tuple[str, Any]] = {}
"""(project dir, kind) -> (key, value): what watch mode keeps between passes."""


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside (re-enabled after, as it was)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _get(project_dir: Path, kind: str, key: str) -> Any:
    held = _memory.get((str(project_dir), kind))
    if held is not None and held[0] == key:
        return held[1]
    try:
        data = read_file(project_dir, f"{CACHE_DIR}/{kind}.pickle", _LIMIT)
        stored_key, value = pickle.loads(data)
    except (OSError, ValueError, UnsafePathError, pickle.UnpicklingError, EOFError, AttributeError, TypeError):
        return None
    except Exception:
        return None
    if stored_key != key:
        return None
    _memory[(str(project_dir), kind)] = (key, value)
    return value


def _put(project_dir: Path, kind: str, key: str, value: Any) -> None:
    _memory[(str(project_dir), kind)] = (key, value)
    with contextlib.suppress(OSError, UnsafePathError, pickle.PicklingError, RecursionError):
        atomic_write_bytes(project_dir / CACHE_DIR / f"{kind}.pickle", pickle.dumps((key, value), protocol=5))


@dataclass
class CachedDesired:
    """The desired state of one revision, its specs pickled phase by phase: a pass takes the
    specs of the phases it plans (an archived phase's are never unpickled) and the digests of
    every phase (``phase_digests``)."""

    base: DesiredState
    """Everything but the specs (config, decisions, designs, definitions, revision)."""
    phases: dict[str, bytes]
    digests: dict[str, str]
    _assembled: tuple[frozenset[str], DesiredState] | None = field(default=None, repr=False)

    def desired(self, skip: Iterable[str] = ()) -> DesiredState:
        """The desired state without the specs of the phases in ``skip``."""
        skipped = frozenset(skip)
        if self._assembled is not None and self._assembled[0] == skipped:
            _digests[id(self._assembled[1])] = (self._assembled[1], self.digests)
            return self._assembled[1]
        specs = [s for phase, blob in self.phases.items() if phase not in skipped for s in pickle.loads(blob)]
        out = replace(self.base, experiments=tuple(sorted(specs, key=lambda s: s.id)))
        _digests[id(out)] = (out, self.digests)
        self._assembled = (skipped, out)
        return out

    @classmethod
    def of(cls, full: DesiredState) -> CachedDesired:
        by_phase: dict[str, list[Any]] = defaultdict(list)
        for spec in full.experiments:
            by_phase[spec.phase].append(spec)
        phases = {phase: pickle.dumps(tuple(specs), protocol=5) for phase, specs in by_phase.items()}
        return cls(replace(full, experiments=()), phases, phase_digests(full), (frozenset(), full))


def desired(project_dir: Path, revision: str, load: Callable[[], DesiredState]) -> CachedDesired:
    """The desired state of ``revision`` (``load`` parses it on a miss). Kept only when no
    decision names an experiment outside the spec: that check also reads the recorded state,
    which the revision does not pin."""
    key = f"{CODE}:{revision}"
    hit = _get(project_dir, "desired", key)
    if isinstance(hit, tuple) and len(hit) == 3 and isinstance(hit[0], DesiredState):
        return CachedDesired(*hit)
    value = load()
    cached = CachedDesired.of(value)
    ids = {s.id for s in value.experiments}
    if all(d.exp is None or d.exp in ids for d in value.decisions):
        _put(project_dir, "desired", key, (cached.base, cached.phases, cached.digests))
    return cached


_digests: dict[int, tuple[DesiredState, dict[str, str]]] = {}


def phase_digests(desired_state: DesiredState) -> dict[str, str]:
    """``spec_digest`` of each phase's specs (computed once per desired state; for one that
    ``CachedDesired`` assembled, every phase's, the skipped ones included)."""
    held = _digests.get(id(desired_state))
    if held is not None and held[0] is desired_state:
        return held[1]
    by_phase: dict[str, list[Any]] = defaultdict(list)
    for spec in desired_state.experiments:
        by_phase[spec.phase].append(spec)
    policies = desired_state.config.policies
    out = {phase: spec_digest(specs, policies) for phase, specs in by_phase.items()}
    if len(_digests) > 64:
        _digests.clear()
    _digests[id(desired_state)] = (desired_state, out)
    return out


def remember_state(project_dir: Path, data: bytes, build: Callable[[], StateFile]) -> None:
    """Keep what ``state`` would parse from ``data`` (``build`` makes it from the same document)."""
    with paused_gc(), contextlib.suppress(ValueError, TypeError, KeyError):  # not what loading gives: no entry
        _put(project_dir, "state", _state_key(data), build())


def _state_key(data: bytes) -> str:
    return f"{CODE}:{hashlib.blake2b(data, digest_size=32).hexdigest()}"


def state(project_dir: Path, data: bytes, parse: Callable[[bytes], StateFile]) -> StateFile:
    """The recorded state held by ``data`` (``parse`` on a miss; what it raises is raised)."""
    key = _state_key(data)
    hit = _get(project_dir, "state", key)
    if isinstance(hit, StateFile):
        return hit
    value = parse(data)
    _put(project_dir, "state", key, value)
    return value
