"""Archived phases: a phase whose experiments have all ended moves out of ``dispatch/state.json``
into ``dispatch/archive/<phase>.json`` (issue 20).

``dispatch/state.json`` keeps the live phases (the seed-compatible file every pass reads and
rewrites) and, under ``archived``, one small record per archived phase: how many experiments it
holds by status, its experiments per stage (the stage gates count them), and a digest of the
specs of the phase (with the policies they are synced under). A pass reads no archive file while
the digest still matches the spec: nothing in the spec could change an entry of the phase. A
changed spec, an experiment added to the phase or moved out of it, or a decision about one of its
experiments brings the phase back (``restore``): its entries return to ``dispatch/state.json``
and are planned as any other; when they have all ended again, they are archived again.

The archive file is a state file of its own (the same format, the same checks), named by the
phase: never by a path read from a file, so a committed record cannot point anywhere else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.model.spec import ExperimentSpec

ARCHIVE_DIR = "dispatch/archive"
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}")
_RESERVED = frozenset({"index", "state"})


def archive_path(phase: str) -> str:
    """``dispatch/archive/<phase>.json``; a phase that is not a plain file name gets its name
    cleaned and a short hash of the phase (two phases never share a file)."""
    if _SAFE.fullmatch(phase) and not phase.endswith(".") and phase.lower() not in _RESERVED:
        return f"{ARCHIVE_DIR}/{phase}.json"
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", phase).strip(".-")[:60] or "phase"
    digest = hashlib.sha256(phase.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{ARCHIVE_DIR}/{cleaned}-{digest}.json"


@dataclass(frozen=True)
class StageCount:
    """The experiments of one stage in an archived phase (still in the spec, not cancelled by it)."""

    stage: int
    members: int
    settled: int
    """done or cancelled"""
    stopped: int
    """failed: they keep a later stage waiting until it is approved"""


@dataclass(frozen=True)
class ArchivedPhase:
    """The record of one archived phase in ``dispatch/state.json``."""

    phase: str
    experiments: int
    counts: tuple[tuple[str, int], ...]
    """status -> number of experiments"""
    stages: tuple[StageCount, ...]
    digest: str
    """``spec_digest`` of the phase's specs when it was archived"""
    archived_at: str

    @property
    def file(self) -> str:
        return archive_path(self.phase)

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiments": self.experiments,
            "counts": dict(self.counts),
            "stages": [dataclasses.asdict(s) for s in self.stages],
            "digest": self.digest,
            "archived_at": self.archived_at,
            "file": self.file,
        }

    @classmethod
    def from_dict(cls, phase: str, d: Mapping[str, Any]) -> ArchivedPhase:
        """Strict: a record the reconciler did not write raises ``ValueError`` (the state file is
        then corrupt and restored from git, as for any other bad field)."""
        if not isinstance(d, Mapping) or not phase:
            raise ValueError(f"archived phase {phase!r}: not an object")
        counts = d.get("counts")
        stages = d.get("stages")
        if not isinstance(counts, Mapping) or not isinstance(stages, list):
            raise ValueError(f"archived phase {phase!r}: counts must be an object and stages a list")
        out_counts = tuple(sorted((str(k), _count(v, phase)) for k, v in counts.items()))
        out_stages = []
        for s in stages:
            if not isinstance(s, Mapping):
                raise ValueError(f"archived phase {phase!r}: a stage must be an object")
            out_stages.append(
                StageCount(*(_count(s.get(k), phase) for k in ("stage", "members", "settled", "stopped")))
            )
        digest, at = d.get("digest"), d.get("archived_at")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{16,64}", digest):
            raise ValueError(f"archived phase {phase!r}: digest must be a hex string")
        return cls(
            phase=phase,
            experiments=_count(d.get("experiments"), phase),
            counts=out_counts,
            stages=tuple(sorted(out_stages, key=lambda s: s.stage)),
            digest=digest,
            archived_at=str(at or ""),
        )


def archived_from_dict(value: object) -> tuple[ArchivedPhase, ...]:
    """The ``archived`` records of a state file's document (``ValueError`` for one we never write)."""
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise ValueError("archived must be an object: phase -> record")
    return tuple(ArchivedPhase.from_dict(str(k), v) for k, v in sorted(value.items()))


def canonical_text(data: Mapping[str, Any]) -> str:
    """A state file's (or an archive file's) document as text: sorted keys, two-space indent, one
    experiment per line (a commit's diff shows exactly the experiments it changed, and the C
    encoder writes 30,000 entries in a second), trailing newline."""
    parts = []
    for key in sorted(data):
        if key == "experiments" and data[key]:
            lines = ",\n".join(
                "    " + json.dumps(e, sort_keys=True, ensure_ascii=False, allow_nan=False) for e in data[key]
            )
            parts.append(f'  "experiments": [\n{lines}\n  ]')
            continue
        value = json.dumps(data[key], indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
        parts.append(f"  {json.dumps(key)}: " + value.replace("\n", "\n  "))
    return "{\n" + ",\n".join(parts) + "\n}\n"


def _count(value: object, phase: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**31:
        raise ValueError(f"archived phase {phase!r}: {value!r} is not a count")
    return value


_FINGERPRINT = tuple(f.name for f in dataclasses.fields(ExperimentSpec) if f.compare and f.name != "source")
"""What an archived entry could take from its spec: every compared field but where it is written."""


def spec_digest(specs: Iterable[ExperimentSpec], policies: object) -> str:
    """A digest of ``specs`` (any order) and of ``policies``: equal exactly when nothing in them
    could change an entry of the phase (``plan.entries.sync``, decisions and retries read only
    these)."""
    lines = sorted(repr(tuple(getattr(s, name) for name in _FINGERPRINT)) for s in specs)
    h = hashlib.sha256(repr(policies).encode("utf-8", "surrogatepass"))
    for line in lines:
        h.update(b"\n")
        h.update(line.encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:32]
