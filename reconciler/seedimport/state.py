"""Rewrite the seed's ``dispatch/state.json`` in our canonical form, losing no fact.

The seed's newest facts may sit in per-experiment sidecars (``dispatch/<EXP_ID>.status.json``)
that its Lab had not merged yet; they are merged first with the seed's own rule (non-null sidecar
values win). Values are then coerced to the types we model (``phase`` to a string, ``gpu`` lists to
their first index, numeric strings to numbers); a status outside the vocabulary becomes
``on_hold`` with a note, so that a person decides. Fields we do not model stay in
``StatusEntry.extra``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.confine import read_file
from reconciler.errors import UnsafePathError
from reconciler.model.escalation import Escalation
from reconciler.model.seedrun import SEED
from reconciler.model.status import Attempt, StateFile, Status, StatusEntry
from reconciler.results import check_result
from reconciler.seedimport.specs import as_float, as_int, group_of, is_archived

_INT_FIELDS = ("seed", "stage", "priority", "retry_count", "max_retries", "pid")
_STR_FIELDS = ("command", "phase", "method", "dataset", "notes")


def merge_sidecars(entries: list[dict[str, Any]], dispatch_dir: Path) -> list[str]:
    """Fold ``<EXP_ID>.status.json`` files into ``entries`` in place; returns the files used."""
    by_id = {str(e.get("id")): e for e in entries}
    used = []
    for path in sorted(dispatch_dir.glob("*.status.json")):
        try:
            side = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(side, dict):
            continue
        entry = by_id.get(str(side.get("id") or side.get("exp_id") or path.name[: -len(".status.json")]))
        if entry is None:
            continue
        entry.update({k: v for k, v in side.items() if k not in ("id", "exp_id") and v is not None})
        used.append(path.name)
    return used


def _known_status(value: str) -> bool:
    """Ours, or one of the seed's drifted names that the model maps onto ours (``dead``, ...)."""
    try:
        StatusEntry.from_dict({"id": "-", "status": value})
    except ValueError:
        return False
    return True


def _note(entry: dict[str, Any], text: str) -> None:
    notes = str(entry.get("notes") or "")
    entry["notes"] = f"{notes}; {text}" if notes else text


def normalize(raw: Mapping[str, Any], targets: Mapping[str, str]) -> dict[str, Any]:
    """One seed entry, with the types ``StatusEntry`` expects."""
    entry = dict(raw)
    status = str(entry.get("status") or "pending").strip().lower()
    if not _known_status(status):
        _note(entry, f"imported with unknown status {entry.get('status')!r}")
        status = Status.ON_HOLD.value
    entry["status"] = status
    for key in _STR_FIELDS:
        entry[key] = "" if entry.get(key) is None else str(entry[key])
    if "group" in entry and group_of(entry["group"]) != entry["group"]:
        _note(entry, f"imported group {entry['group']!r} as {group_of(entry['group'])!r}")
        entry["group"] = group_of(entry["group"])
    for key in _INT_FIELDS:
        if key in entry:
            value = as_int(entry[key])
            if value is None and entry[key] is not None:
                _note(entry, f"imported {key}={entry[key]!r} as null")
            if value is None and key in ("stage", "priority", "retry_count", "max_retries"):
                del entry[key]
            else:
                entry[key] = value
    gpu = entry.get("gpu")
    if isinstance(gpu, list):
        entry["gpu"] = as_int(gpu[0]) if gpu else None
    elif gpu is not None:
        entry["gpu"] = as_int(gpu)
    if "expected_duration_hours" in entry:
        entry["expected_duration_hours"] = as_float(entry["expected_duration_hours"])
    if entry.get("job_id") is not None:
        entry["job_id"] = str(entry["job_id"])
    host = entry.get("host")
    if isinstance(host, str) and host in targets:
        entry["target"] = targets[host]
    if is_archived(entry):
        message = f"archived in the seed project (phase {entry['phase']!r})"
        entry["conditions"] = [{"type": "Archived", "status": True, "reason": "ArchivedInSeed", "message": message}]
    return entry


def convert_state(seed: Mapping[str, Any], project: str, targets: Mapping[str, str]) -> StateFile:
    """The seed state document as our ``StateFile``."""
    entries = [normalize(e, targets) for e in seed.get("experiments") or () if isinstance(e, Mapping)]
    return StateFile.from_dict({"project": project, "updated": str(seed.get("updated") or ""), "experiments": entries})


LIVE_STATUSES = (Status.RUNNING, Status.QUEUED, Status.UNREACHABLE, Status.ON_HOLD)
"""Seed statuses under which a process or job of the seed's may still run (the seed never killed
a run it put on hold)."""


def adopt_live(
    state: StateFile, checkouts: Mapping[str, str], batch: frozenset[str], when: str
) -> tuple[StateFile, list[str]]:
    """Give every entry the seed left live (``LIVE_STATUSES`` with a pid or job id on a known
    target) an attempt with ``origin: seed`` (``model.seedrun``), so that the passes watch it,
    count its GPU, guard its duration, collect its result and settle it like a run of ours.

    ``checkouts``: target -> the seed's project dir there (its logs, exit log and result file);
    ``batch``: targets whose runs are jobs (their pid, on a login host, is no process of the run).
    An entry recorded ``running``/``queued`` with neither pid nor job id (the seed crashed between
    its sidecar and the launch) goes ``on_hold`` with an escalation: a person looks at the host; one
    recorded ``unreachable`` with neither never started (the seed's "SSH failed at launch") and is
    pending again. Returns the state and a line per entry for the import's output."""
    entries = []
    notes = []
    for entry in state.entries:
        if entry.status not in LIVE_STATUSES or entry.attempts:
            entries.append(entry)
            continue
        target = entry.target
        pid = None if target in batch else entry.pid
        if target is None or target not in checkouts or (pid is None and entry.job_id is None):
            kept, line = _not_adoptable(entry, target, when)
            entries.append(kept)
            if line:
                notes.append(line)
            continue
        attempt = Attempt(
            n=1,
            target=target,
            command=entry.command,
            run_dir=checkouts[target],
            token=SEED,
            host=entry.host,
            gpus=(entry.gpu,) if entry.gpu is not None and target not in batch else (),
            pid=pid,
            job_id=entry.job_id,
            started=entry.started,
            git_commit=entry.git_commit,
            origin=SEED,
        )
        entries.append(dataclasses.replace(entry, attempt=1, attempts=(attempt,), pid=pid))
        how = f"pid {pid}" if pid is not None else f"job {entry.job_id}"
        notes.append(
            f"{entry.id}: {entry.status.value} under the seed ({how} on {target}): adopted; the passes watch it and"
            f" read its exit code, log and result under {checkouts[target]}"
        )
    return dataclasses.replace(state, entries=tuple(entries)), notes


def _not_adoptable(entry: StatusEntry, target: str | None, when: str) -> tuple[StatusEntry, str | None]:
    if entry.status is Status.ON_HOLD:  # a person decides already (resolve), as under the seed
        return entry, None
    if entry.status is Status.UNREACHABLE and entry.pid is None and entry.job_id is None:
        line = f"{entry.id}: unreachable at launch under the seed (nothing started): pending again"
        return dataclasses.replace(entry, status=Status.PENDING, notes=_noted(entry.notes, line)), line
    where = f"on {entry.host}" if entry.host else "on no recorded host"
    if target is None:
        why = f"recorded {entry.status.value} by the seed {where}, which is no target of this project"
    else:
        why = f"recorded {entry.status.value} by the seed {where} with no pid or job id"
    escalation = Escalation(
        reason=f"{why}: it cannot be watched",
        created=when,
        needed="look on the host for a process or job of it; then retry (it starts again) or cancel",
        kind="on_hold",
    )
    held = dataclasses.replace(
        entry, status=Status.ON_HOLD, escalation=escalation, notes=_noted(entry.notes, f"on_hold: {why}")
    )
    return held, f"{entry.id}: {why}: on hold with an escalation"


def _noted(notes: str, line: str) -> str:
    return f"{notes}; {line}" if notes else line


RESULT_BYTES = 16 * 1024 * 1024
"""The most of a done entry's result file the import reads for its final metrics."""


def with_results(state: StateFile, project_dir: Path) -> tuple[StateFile, list[str]]:
    """A ``done`` entry the seed recorded without final metrics gets them from its result file in
    the project (the file its Lab rsynced back), when that is the canonical result CSV of the
    entry: the seed's dashboard and our design tables read ``results``. A file that is missing, a
    link, too large or not canonical leaves the entry as it was, named in the output."""
    entries = []
    notes = []
    for entry in state.entries:
        if entry.status is not Status.DONE or entry.results or "results" in entry.extra_names:
            entries.append(entry)
            continue
        text, why = _result_text(project_dir, entry.result_path)
        verdict = check_result(text, entry.id) if text is not None else None
        if verdict is not None and verdict.ok:
            entries.append(dataclasses.replace(entry, results=verdict.means))
            continue
        entries.append(entry)
        if not is_archived(entry.to_dict()):
            notes.append(
                f"{entry.id}: done under the seed; no final metrics from {entry.result_path} ({why or verdict})"
            )
    return dataclasses.replace(state, entries=tuple(entries)), notes


def _result_text(project_dir: Path, rel: str) -> tuple[str | None, str | None]:
    try:
        data = read_file(project_dir, rel, RESULT_BYTES)
    except FileNotFoundError:
        return None, "no such file"
    except (OSError, ValueError, UnsafePathError) as exc:  # a link, not a regular file, too large
        return None, str(exc)
    return data.decode("utf-8", "replace"), None
