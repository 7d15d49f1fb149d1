"""The PBS Pro / OpenPBS adapter: job script, ``qsub``, ``qstat``, ``qdel``, ``qselect`` (pure).

What it fixes of the seed (seed-system.md 3.8 and 10.16): every resource is on its own
``#PBS -l`` line and ``#PBS -P`` is written, so the seed's own directive check (grep for
``#PBS -l walltime``, ``-l ncpus``, ``-l ngpus``, ``-l mem``, ``-l storage``, ``#PBS -P``) passes;
``-j oe -o`` names the one file the adapter reads; status uses PBS Pro's ``qstat -x -f`` (finished
jobs stay visible in state ``F`` with ``Exit_status``) instead of Grid Engine's ``qstat -j``; the
CPU count follows the queue's rule (Gadi's ``gpuvolta``: 12 CPUs per GPU).

Status is one shell snippet for every job of the pass: ``qstat -x -f -F json <ids>`` (OpenPBS 19
and later), falling back to the text ``qstat -x -f <ids>`` when ``-F json`` printed nothing (older
PBS Pro). Ids that left the server's history make ``qstat`` exit 153 with ``Unknown Job Id`` on
stderr; that is not an error. Sections of the snippet's output are separated by ``@@pbs-...@@``
marker lines so that the parser knows which format it reads and what ``qstat`` said on stderr.

Exit codes (``Exit_status``, PBS Pro reference; ``JOB_EXEC_*`` from OpenPBS ``src/include/job.h``):
``0`` ok; ``1..255`` the job script's own status; ``> 256`` killed by signal ``n - 256`` (``271``:
SIGTERM, what ``qdel`` sends); negative: PBS could not run or killed the job itself (``-29``
walltime, ``-27``/``-26`` memory, ``-3``/``-11``/``-20`` node or launch failure, requeue).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.backends.scheduler import JobInfo, JobRequest, JobState, hms, submit_error
from reconciler.errors import PermanentError, ReconcilerError, SchedulerOutputError

CPUS_PER_GPU_BY_QUEUE: Mapping[str, int] = {"gpuvolta": 12}
"""Documented per-queue CPU rule: NCI Gadi's ``gpuvolta`` requires ``ncpus = 12 x ngpus``
(seed-system.md 10.16, NCI job-cost documentation). ``BatchOptions.cpus_per_gpu`` overrides it."""
DEFAULT_CPUS_PER_GPU = 8
"""CPUs per GPU on queues without a rule (the seed's header asked for 8)."""
DEFAULT_MEM_GB_PER_GPU = 32
"""Memory per GPU when ``mem_gb`` is not configured (the seed's header asked for 32 GB)."""

JSON_MARK = "@@pbs-json@@"
TEXT_MARK = "@@pbs-text@@"
ERR_MARK = "@@pbs-err@@"
RC_MARK = "@@pbs-rc@@"

UNKNOWN_JOB_EXIT = 153
"""``qstat``/``qdel`` exit status for ``Unknown Job Id`` (PBSE_UNKJOBID 15001 modulo 256)."""
HISTORY_JOB_EXIT = 35
"""Exit status for ``Job has finished`` (PBSE_HISTJOBID 15139 modulo 256)."""
_HARMLESS = re.compile(r"Unknown Job Id|Job has finished|job already finished|Request invalid for state of job")

JOB_ID = re.compile(r"\d+(?:\[\d*\])?(?:\.[A-Za-z0-9_.-]+)?")
_PLAIN_ID = re.compile(r"\d+(?:\.[A-Za-z0-9_.-]+)?")
"""Ids the status snippet passes to ``qstat`` (no array brackets, so no shell globbing)."""
_SAFE_VALUE = re.compile(r"[^\s#'\"\\`$;|&<>]+")

# Exit_status -> our state, for PBS's own (negative) codes.
_CODE_STATES: Mapping[int, JobState] = {
    **dict.fromkeys((-1, -2, -3, -4, -5, -6, -7, -11, -14, -15, -16, -18, -20), JobState.NODE_FAIL),
    -12: JobState.PREEMPTED,  # JOB_EXEC_CHKP: checkpointed and killed (checkpoint preemption)
    -26: JobState.OUT_OF_MEMORY,  # JOB_EXEC_KILL_VMEM
    -27: JobState.OUT_OF_MEMORY,  # JOB_EXEC_KILL_MEM
    -29: JobState.TIMEOUT,  # JOB_EXEC_KILL_WALLTIME
}
_LIVE_STATES: Mapping[str, JobState] = {
    "Q": JobState.QUEUED,
    "W": JobState.QUEUED,
    "T": JobState.QUEUED,
    "M": JobState.QUEUED,
    "H": JobState.HELD,
    "R": JobState.RUNNING,
    "E": JobState.RUNNING,
    "B": JobState.RUNNING,
    "S": JobState.RUNNING,  # suspended (e.g. by preemption); it resumes, so it is not finished
    "U": JobState.RUNNING,
}
_WALLTIME = re.compile(r"walltime\b.*exceeded limit|exceeded.*walltime", re.IGNORECASE)
_MEMORY = re.compile(r"job killed: (?:p|v)?mem\b|(?:p|v)?mem\b.*exceeded limit", re.IGNORECASE)


def classify(raw_state: str, exit_status: int | None, comment: str | None) -> JobState:
    """Our state for a PBS job state letter, its ``Exit_status`` and its ``comment``."""
    raw = raw_state.strip().upper()
    if raw in _LIVE_STATES:
        return _LIVE_STATES[raw]
    if raw not in ("F", "X"):
        return JobState.UNKNOWN
    text = comment or ""
    if exit_status == 0:
        return JobState.COMPLETED
    if exit_status is not None and exit_status in _CODE_STATES:
        return _CODE_STATES[exit_status]
    if _WALLTIME.search(text):
        return JobState.TIMEOUT
    if _MEMORY.search(text):
        return JobState.OUT_OF_MEMORY
    if "preempt" in text.lower():
        return JobState.PREEMPTED
    if exit_status is None:
        return JobState.CANCELLED  # deleted before it ever ran
    if exit_status == 256 + 15:
        return JobState.CANCELLED  # SIGTERM from qdel
    return JobState.FAILED


def _directive_value(field: str, value: str) -> str:
    """A directive value that cannot break out of its ``#PBS`` line."""
    if not _SAFE_VALUE.fullmatch(value):
        raise PermanentError(f"PBS {field} {value!r} has characters a #PBS directive cannot carry", "InvalidTarget")
    return value


def _mem(gb: float) -> str:
    return f"{int(gb)}GB" if float(gb).is_integer() else f"{round(gb * 1024)}MB"


class Pbs:
    """PBS Pro / OpenPBS (see the module docstring).

    ``resources="separate"`` (default, Gadi style) writes ``-l ncpus=``, ``-l ngpus=``, ``-l mem=``
    as separate lines; ``"select"`` writes one ``-l select=1:ncpus=..:ngpus=..:mem=..`` chunk (sites
    that require chunk syntax; the seed's grep for ``-l ncpus`` does not pass then)."""

    kind = "pbs"

    def __init__(self, resources: str = "separate") -> None:
        if resources not in ("separate", "select"):
            raise ValueError(f"resources must be 'separate' or 'select', not {resources!r}")
        self.resources = resources

    # ---- job script -------------------------------------------------------------------------

    @staticmethod
    def cpus(request: JobRequest) -> int:
        """``cpus_per_gpu`` (config) or the queue's rule or the default, times the GPUs (min 1)."""
        opts = request.options
        per_gpu = opts.cpus_per_gpu or CPUS_PER_GPU_BY_QUEUE.get(opts.queue or "", DEFAULT_CPUS_PER_GPU)
        return per_gpu * max(1, request.gpus)

    @staticmethod
    def mem(request: JobRequest) -> str:
        gb = request.options.mem_gb or DEFAULT_MEM_GB_PER_GPU * max(1, request.gpus)
        return _mem(gb)

    def directives(self, request: JobRequest) -> list[str]:
        opts = request.options
        lines = [f"#PBS -N {_directive_value('job name', request.name)}"]
        if opts.account:
            lines.append(f"#PBS -P {_directive_value('project', opts.account)}")
        if opts.queue:
            lines.append(f"#PBS -q {_directive_value('queue', opts.queue)}")
        lines.append(f"#PBS -l walltime={hms(request.walltime_seconds)}")
        ncpus, mem = self.cpus(request), self.mem(request)
        if self.resources == "select":
            lines.append(f"#PBS -l select=1:ncpus={ncpus}:ngpus={request.gpus}:mem={mem}")
        else:
            lines += [f"#PBS -l ncpus={ncpus}", f"#PBS -l ngpus={request.gpus}", f"#PBS -l mem={mem}"]
        if opts.storage:
            lines.append(f"#PBS -l storage={_directive_value('storage', opts.storage)}")
        lines += ["#PBS -j oe", f"#PBS -o {_directive_value('output path', request.output)}"]
        for extra in opts.extra_directives:
            if "\n" in extra or "\r" in extra:
                raise PermanentError(f"PBS extra directive {extra!r} spans lines", "InvalidTarget")
            lines.append(extra if extra.startswith("#PBS") else f"#PBS {extra}")
        return lines

    def job_script(self, request: JobRequest) -> str:
        body = [f"module load {shlex.quote(m)}" for m in request.options.modules]
        return "\n".join(
            [
                "#!/bin/sh",
                *self.directives(request),
                "# written by reconcile: the run wrapper below records pid, heartbeat and exit code",
                *body,
                f"exec /bin/sh {shlex.quote(request.wrapper)}",
                "",
            ]
        )

    # ---- submit / cancel / find -------------------------------------------------------------

    def submit_command(self, script_path: str, request: JobRequest) -> str:
        return f"cd {shlex.quote(request.run_dir)} && qsub {shlex.quote(script_path)}"

    def submit_error(self, status: int, output: str) -> ReconcilerError:
        """What a failed ``qsub`` means: the server away or a queue limit reached (not now), or a
        rejection of the job (stalls until the spec changes)."""
        return submit_error("qsub", status, output, _TRANSIENT_SUBMIT)

    def parse_submit(self, stdout: str) -> str:
        """``qsub`` prints the new id (``1234.gadi-pbs``) on its last line."""
        lines = [line.strip() for line in stdout.splitlines() if line.strip()]
        if lines and JOB_ID.fullmatch(lines[-1]):
            return lines[-1]
        raise SchedulerOutputError(f"qsub printed no job id: {stdout.strip()[:200]!r}")

    def cancel_command(self, job_id: str) -> str:
        q = shlex.quote(job_id)
        return (
            f"(__o=$(qdel {q} 2>&1); __rc=$?; printf '%s\\n' \"$__o\"; "
            f"if [ $__rc -eq 0 ] || printf '%s' \"$__o\" | grep -Eq '{_HARMLESS.pattern}'; "
            "then exit 0; fi; exit $__rc)"
        )

    def find_command(self, name: str) -> str:
        return f"qselect -N {shlex.quote(name)} 2>/dev/null; true"

    def parse_find(self, stdout: str) -> list[str]:
        return [line.strip() for line in stdout.splitlines() if JOB_ID.fullmatch(line.strip())]

    # ---- status -----------------------------------------------------------------------------

    def status_command(self, job_ids: Sequence[str], names: Sequence[str]) -> str:
        """One snippet: ids (plus live jobs found by name) -> JSON, or text when JSON is absent.
        Never runs ``qstat`` without ids (that would list every job of the server)."""
        ids = " ".join(i for i in job_ids if _PLAIN_ID.fullmatch(i))
        lookup = "".join(f'__ids="$__ids $(qselect -N {shlex.quote(n)} 2>/dev/null | tr "\\n" " ")"; ' for n in names)
        return (
            f"(__ids={shlex.quote(ids)}; {lookup}"
            '__e=$(mktemp 2>/dev/null || echo "/tmp/rc-pbs-err.$$"); : >"$__e"; __rc=0; '
            f"echo '{JSON_MARK}'; "
            'if [ -n "$(echo $__ids)" ]; then '
            '__j=$(qstat -x -f -F json $__ids 2>"$__e"); __rc=$?; '
            'if [ -n "$__j" ]; then printf \'%s\\n\' "$__j"; '
            f"else echo '{TEXT_MARK}'; qstat -x -f $__ids 2>\"$__e\"; __rc=$?; fi; fi; "
            f"echo '{RC_MARK}' $__rc; sed 's/^/{ERR_MARK} /' \"$__e\"; rm -f \"$__e\"; true)"
        )

    def parse_status(self, stdout: str) -> Mapping[str, JobInfo]:
        sections = _sections(stdout)
        if "json" not in sections and "text" not in sections:
            raise SchedulerOutputError(f"no qstat output section in: {stdout.strip()[:200]!r}")
        errors = [line for line in sections.get("err", []) if line.strip()]
        rc = _rc(sections.get("rc", []))
        json_text = "\n".join(sections.get("json", [])).strip()
        text = "\n".join(sections.get("text", []))
        if json_text:
            jobs = parse_qstat_json(json_text)
        elif text.strip():
            jobs = parse_qstat_text(text)
        else:
            jobs = {}
        bad = [line for line in errors if not _HARMLESS.search(line)]
        if bad and not jobs and rc not in (0, None):
            raise SchedulerOutputError(f"qstat failed (exit {rc}): {' '.join(bad)[:300]}")
        return jobs


def _sections(stdout: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in stdout.splitlines():
        if line == JSON_MARK:
            current = "json"
            sections.setdefault(current, [])
        elif line == TEXT_MARK:
            current = "text"
            sections.pop("json", None)
            sections.setdefault(current, [])
        elif line.startswith(RC_MARK):
            sections.setdefault("rc", []).append(line[len(RC_MARK) :].strip())
            current = None
        elif line.startswith(ERR_MARK):
            sections.setdefault("err", []).append(line[len(ERR_MARK) :].strip())
        elif current is not None:
            sections[current].append(line)
    return sections


def _rc(values: list[str]) -> int | None:
    try:
        return int(values[-1]) if values else None
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _info(job_id: str, attrs: Mapping[str, Any]) -> JobInfo:
    raw = attrs.get("job_state")
    if not isinstance(raw, str) or not raw.strip():
        raise SchedulerOutputError(f"qstat: job {job_id} has no job_state")
    exit_status = _int(attrs.get("Exit_status"))
    comment = attrs.get("comment")
    comment = comment if isinstance(comment, str) else None
    name = attrs.get("Job_Name")
    return JobInfo(
        job_id=job_id,
        name=name if isinstance(name, str) else None,
        state=classify(raw, exit_status, comment),
        raw_state=raw.strip(),
        exit_status=exit_status,
        reason=comment,
    )


def parse_qstat_json(text: str) -> dict[str, JobInfo]:
    """Jobs of ``qstat -f -F json`` output (``{"timestamp":..,"pbs_version":..,"Jobs":{id:{..}}}``;
    ``Jobs`` is absent when no job matched)."""
    try:
        doc = json.loads(text, strict=False)  # PBS prints control characters raw in some values
    except (ValueError, RecursionError) as exc:
        raise SchedulerOutputError(f"qstat -F json printed invalid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise SchedulerOutputError("qstat -F json did not print an object")
    jobs = doc.get("Jobs", {})
    if not isinstance(jobs, dict):
        raise SchedulerOutputError("qstat -F json: 'Jobs' is not an object")
    out: dict[str, JobInfo] = {}
    for job_id, attrs in jobs.items():
        if not isinstance(attrs, dict):
            raise SchedulerOutputError(f"qstat -F json: job {job_id} is not an object")
        out[job_id] = _info(job_id, attrs)
    return out


def parse_qstat_text(text: str) -> dict[str, JobInfo]:
    """Jobs of the text ``qstat -f`` output: ``Job Id: <id>`` blocks of ``    key = value``
    lines; a value longer than the line continues on lines that start with a tab."""
    out: dict[str, JobInfo] = {}
    job_id: str | None = None
    attrs: dict[str, str] = {}
    last: str | None = None

    def flush() -> None:
        if job_id is not None:
            out[job_id] = _info(job_id, attrs)

    for line in text.splitlines():
        if line.startswith("Job Id:"):
            flush()
            job_id, attrs, last = line[len("Job Id:") :].strip(), {}, None
            if not job_id:
                raise SchedulerOutputError("qstat: 'Job Id:' without an id")
        elif line.startswith("\t") and last is not None:
            attrs[last] += line[1:]
        elif " = " in line and line.startswith(" ") and job_id is not None:
            key, _, value = line.strip().partition(" = ")
            attrs[key], last = value, key
        elif line.strip() and job_id is None:
            raise SchedulerOutputError(f"qstat -f: unexpected line {line[:80]!r}")
    flush()
    return out


_TRANSIENT_SUBMIT = (
    "cannot connect to server",
    "Connection refused",
    "Server not available",
    "Communication failure",
    "timed out",
    "would exceed",
    "Maximum number of jobs already in queue",
    "Resource temporarily unavailable",
    "try again",
)
"""qsub messages that mean "not now" rather than "never" (server away, per-user or queue limits)."""
