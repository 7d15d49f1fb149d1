"""The probe's two ends on the controller side (observe stage): the request and the parse.

The script itself is ``resources/probe.py`` (it runs on the target). It is installed once per
content at ``<root>/.reconciler/probe-<hash>.py``, so a pass costs one remote command.

Request (JSON on stdin)::

    {"root": "~/proj", "want": [["A_s0", 1]], "tail": 20, "smi": [GPU_QUERY, APPS_QUERY],
     "fatal": {"markers": FATAL_MARKERS, "words": FATAL_WORDS},
     "seed": [["B_s0", 1, pid, start_time | null, started_unix | null, log, exit_log, result,
               job_id | null]], "seed_window": [MATCH_BEFORE, MATCH_AFTER]}

``seed`` (only when the state holds runs the seed started, ``model.seedrun``) asks about runs
that have no run dir of ours: each is reported in ``runs``/``details`` like a run dir, with the
token ``seed``, from its pid (and start time), its exit log, log and result file.

Answer (one JSON line on stdout)::

    {"v": 1, "host": "gpu-a", "root": "/srv/lab/proj", "free_disk_gb": 812.4,
     "fields": ["exp_id", "attempt", "token", "launched", "exit_code", "pid", "start_time", "age"],
     "runs": [["A_s0", 1, "tok", 1, null, 4242, "9137", 37.5], ...],
     "details": [{"exp_id": "A_s0", "attempt": 1, "alive": true, "heartbeat_age": 3.1,
                  "result_size": null, "sidecar": {...} | null, "log_tail": ["..."],
                  "launch": {"gpus": [0], "command": "...", "commit": "...", "vram_gb": 30}
                            | {"cuda_env": "0,1"} | null,
                  "started_age": 12.5 | null, "group": [pid, ...], "oom": ["..."]}],
     "errors": [],
     "gpus": null | {"query": {"rc": 0, "out": "...", "err": ""},
                     "apps": {"rc": 0, "out": "...", "err": ""} | null, "own": [pid, ...],
                     "groups": [[pid, pgid], ...]}}

``leases`` (only when the request names a lease directory and it holds live leases) lists them
(``model.leases``): ``{"name", "project", "exp_id", "attempt", "gpus", "reserved_mb", "host",
"created", "pid", "start_time"}``.

``runs`` has one compact record per run dir (``pid``/``start_time`` only for runs without an exit
code or wanted ones); ``details`` only for runs without an exit code or named in ``want``. A live
process with no exit code and no batch job has an empty ``log_tail`` unless the tail may hold a
fatal line (``model.observed.FATAL_MARKERS``): healthy runs move no log text. ``launch`` is the
run dir's ``launch.json`` (what the launch chose, written before the process started), or for a
run dir of an older version the ``CUDA_VISIBLE_DEVICES`` word its wrapper exports. ``group`` (only when
the recorded leader is gone) lists the live processes left in the run's process group; ``oom``
(only for exit 137) is the kernel OOM killer's evidence (cgroup counter, kernel log lines).
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
from collections.abc import Collection, Mapping
from contextlib import AbstractContextManager
from functools import cache
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

from reconciler.backends.gpus import APPS_QUERY, GPU_QUERY, build_gpus
from reconciler.errors import TransportError
from reconciler.model.leases import LEASE_GRACE, Lease
from reconciler.model.observed import (
    FATAL_MARKERS,
    FATAL_WORDS,
    GpuObservation,
    LaunchRecord,
    RunObservation,
    TargetObservation,
)
from reconciler.model.seedrun import MATCH_AFTER, MATCH_BEFORE, SeedRun
from reconciler.model.sidecar import confine_sidecar

PROBE_VERSION = 1
_INT = 2**63


def _resource() -> Traversable:
    return resources.files("reconciler.backends").joinpath("resources").joinpath("probe.py")


@cache
def probe_source() -> bytes:
    """The probe script's bytes, as shipped in the package."""
    return _resource().read_bytes()


def probe_file() -> AbstractContextManager[Path]:
    """A local path of the probe script (a temp copy only when the package is zipped)."""
    return resources.as_file(_resource())


@cache
def probe_name() -> str:
    """``probe-<hash>.py``: a changed probe gets a new name, so no pass runs a stale one."""
    return f"probe-{hashlib.sha256(probe_source()).hexdigest()[:16]}.py"


def probe_request(
    root: str,
    want: Collection[tuple[str, int]] = (),
    tail: int = 20,
    seed: Mapping[tuple[str, int], SeedRun] | None = None,
    leases: str | None = None,
) -> bytes:
    doc: dict[str, object] = {
        "root": root,
        "want": sorted([exp_id, int(n)] for exp_id, n in want),
        "tail": tail,
        "smi": [list(GPU_QUERY), list(APPS_QUERY)],
        "fatal": {"markers": list(FATAL_MARKERS), "words": list(FATAL_WORDS)},
    }
    if seed:
        doc["seed"] = [
            [exp_id, n, r.pid, r.start_time, r.started, r.log, r.exit_log, r.result, r.job_id]
            for (exp_id, n), r in sorted(seed.items())
        ]
        doc["seed_window"] = [MATCH_BEFORE, MATCH_AFTER]
    if leases:
        doc["leases"] = {"dir": leases, "grace": LEASE_GRACE}
    return json.dumps(doc, separators=(",", ":")).encode()


def _last_json_line(stdout: str) -> dict[str, Any]:
    """The probe's document: the last line that parses (shell start-up files may print first)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                doc = json.loads(line, parse_constant=_no_constant, parse_float=_finite)
            except (ValueError, RecursionError):  # RecursionError: nested too deeply
                continue
            if isinstance(doc, dict):
                return doc
    raise TransportError(f"the probe printed no JSON document: {stdout[-300:]!r}")


def _no_constant(name: str) -> None:
    """``NaN``, ``Infinity`` (a job's sidecar may hold them): read as null."""
    return


def _finite(text: str) -> float | None:
    """A JSON number with a fraction or exponent; ``1e999`` (infinite) is read as null."""
    value = float(text)
    return value if math.isfinite(value) else None


def _opt_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and -_INT <= value < _INT:
        return value
    return None


def _opt_float(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and -_INT <= value <= _INT:
        return float(value)
    return None


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _gpus(section: object) -> tuple[tuple[GpuObservation, ...] | None, str | None]:
    """GPUs, or ``None`` with a note when ``nvidia-smi`` is absent or failed (a CPU target then)."""
    if not isinstance(section, Mapping):
        return None, None
    query = section.get("query")
    apps = section.get("apps")
    if not isinstance(query, Mapping) or query.get("rc") != 0:
        rc = query.get("rc") if isinstance(query, Mapping) else None
        text = ""
        if isinstance(query, Mapping):
            text = " ".join(str(query.get(k) or "").strip() for k in ("out", "err")).strip()
        return None, f"nvidia-smi failed (exit {rc}): {text[:300]}"
    apps_out = apps.get("out") if isinstance(apps, Mapping) and apps.get("rc") == 0 else None
    note = None if apps_out is not None else "nvidia-smi --query-compute-apps failed"
    return build_gpus(str(query.get("out") or ""), _opt_str(apps_out)), note


def gpu_groups(doc: Mapping[str, Any]) -> dict[int, int]:
    """pid -> process group of the GPU processes that belong to a live run of ours."""
    section = doc.get("gpus")
    pairs = section.get("groups") if isinstance(section, Mapping) else None
    out: dict[int, int] = {}
    for pair in pairs if isinstance(pairs, list) else ():
        if isinstance(pair, list) and len(pair) == 2:
            pid, pgid = _opt_int(pair[0]), _opt_int(pair[1])
            if pid is not None and pgid is not None:
                out[pid] = pgid
    return out


def _gpu_list(value: object) -> tuple[int, ...] | None:
    if not isinstance(value, list) or not all(_opt_int(g) is not None and g >= 0 for g in value):
        return None
    return tuple(sorted(set(value)))


def _cuda_env(word: str) -> tuple[int, ...] | None:
    """The GPUs of an exported ``CUDA_VISIBLE_DEVICES`` shell word (``0,1``, ``''``); ``None`` when
    it is not a plain list of indexes."""
    try:
        words = shlex.split(word)
    except ValueError:
        return None
    text = words[0] if len(words) == 1 else "" if not words else None
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        return None
    return tuple(sorted({int(p) for p in parts}))


def launch_record(value: object) -> LaunchRecord | None:
    """The run's ``launch`` detail as a ``LaunchRecord`` (fields of the wrong type are dropped)."""
    if not isinstance(value, Mapping):
        return None
    if "cuda_env" in value:
        word = value.get("cuda_env")
        return LaunchRecord(gpus=_cuda_env(word) if isinstance(word, str) else None)
    return LaunchRecord(
        gpus=_gpu_list(value.get("gpus")),
        command=_opt_str(value.get("command")),
        commit=_opt_str(value.get("commit")) or None,
        vram_gb=_opt_float(value.get("vram_gb")),
    )


def _group(value: object) -> tuple[int, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(p for p in value if isinstance(p, int) and not isinstance(p, bool))


MAX_TAIL_LINES = 500
"""Lines kept of a log tail or evidence list (the probe sends ``tail``, at most a few dozen)."""
MAX_LINE_CHARS = 1000
"""Characters kept of each line: its end (the probe cuts at 400; a target may not)."""


def _lines(value: object) -> tuple[str, ...]:
    """A list of lines as the controller keeps it: the last ``MAX_TAIL_LINES``, each cut."""
    return tuple(_text(line)[-MAX_LINE_CHARS:] for line in _list(value)[-MAX_TAIL_LINES:])


def _text(value: object) -> str:
    """A string as it is; anything else (a number, a nested list) as bounded text."""
    return value if isinstance(value, str) else json.dumps(value)[:MAX_LINE_CHARS]


def _attempt(value: object) -> int:
    """An attempt number (0 <= n < 2**31; 0: a ``probe-vram`` run), else -1: a record no run of
    ours matches."""
    number = int(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else -1
    return number if 0 <= number < 2**31 else -1


def _list(value: object) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def parse_probe(target: str, stdout: str, commands: int = 0) -> TargetObservation:
    """The observation of the probe's answer (its last JSON line)."""
    doc = _last_json_line(stdout)
    version = doc.get("v")
    if type(version) is not int or version != PROBE_VERSION:  # True == 1: not a version
        raise TransportError(f"probe answered version {version!r}, expected {PROBE_VERSION}")
    fields = doc.get("fields")
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise TransportError("probe answer has no field list")
    try:
        return _observation(target, doc, fields, commands)
    except (TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:  # JSON of the wrong shape
        raise TransportError(f"probe answer of the wrong shape: {exc}") from exc


def _observation(target: str, doc: dict[str, Any], fields: list[str], commands: int) -> TargetObservation:
    details: dict[tuple[str, int], Mapping[str, Any]] = {}
    for d in _list(doc.get("details")):
        if isinstance(d, Mapping):
            details[(_text(d.get("exp_id")), _attempt(d.get("attempt", -1)))] = d
    runs: dict[tuple[str, int], RunObservation] = {}
    for values in _list(doc.get("runs")):
        if not isinstance(values, list):
            raise TypeError(f"a run record is {type(values).__name__}, not a list")
        rec = dict(zip(fields, values, strict=False))
        key = (_text(rec.get("exp_id")), _attempt(rec.get("attempt", -1)))
        det = details.get(key, {})
        sidecar = det.get("sidecar")
        runs[key] = RunObservation(
            exp_id=key[0],
            attempt=key[1],
            token=_opt_str(rec.get("token")),
            launched=bool(rec.get("launched")),
            pid=_opt_int(rec.get("pid")),
            start_time=_opt_str(rec.get("start_time")),
            alive=det.get("alive") is True,
            exit_code=_opt_int(rec.get("exit_code")),
            heartbeat_age=_opt_float(det.get("heartbeat_age")),
            result_size=_opt_int(det.get("result_size")),
            sidecar=confine_sidecar(sidecar) if isinstance(sidecar, Mapping) else None,
            log_tail=_lines(det.get("log_tail")),
            age=_opt_float(rec.get("age")),
            job_id=_opt_str(rec.get("job_id")) or None,
            launch=launch_record(det.get("launch")),
            started_age=_opt_float(det.get("started_age")),
            group=_group(det.get("group")),
            oom_evidence=_lines(det.get("oom")),
        )
    gpus, note = _gpus(doc.get("gpus"))
    return TargetObservation(
        target=target,
        reachable=True,
        error=note,
        runs=runs,
        gpus=gpus,
        host=_opt_str(doc.get("host")),
        root=_opt_str(doc.get("root")),
        free_disk_gb=_opt_float(doc.get("free_disk_gb")),
        commands=commands,
        gpu_groups=gpu_groups(doc),
        leases=tuple(_leases(doc.get("leases"))),
    )


def _leases(value: object) -> list[Lease]:
    """The live leases the probe listed (a record of the wrong shape is skipped: another
    project's controller, or anyone who can write the directory, wrote it)."""
    out = []
    for d in _list(value)[:1000]:
        if not isinstance(d, Mapping):
            continue
        gpus = _gpu_list(d.get("gpus"))
        reserved = _opt_float(d.get("reserved_mb"))
        attempt = _attempt(d.get("attempt", -1))
        if not gpus or reserved is None or reserved < 0 or attempt < 0:
            continue
        out.append(
            Lease(
                name=_text(d.get("name"))[:200],
                project=_text(d.get("project"))[:200],
                exp_id=_text(d.get("exp_id"))[:200],
                attempt=attempt,
                gpus=gpus,
                reserved_mb=reserved,
                pid=_opt_int(d.get("pid")),
                start_time=_opt_str(d.get("start_time")),
                host=_opt_str(d.get("host")),
            )
        )
    return out
