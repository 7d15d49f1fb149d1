"""The SLURM adapter: job script, ``sbatch``/``squeue``/``sacct``/``scontrol``/``scancel`` text and
their parsers. Pure: nothing here runs a process (``BatchRunner`` sends the text through the transport).

Status is one shell command per pass. Each tool's output is framed by marker lines so the parser
knows which tool printed what, and whether the tool failed::

    @@rc-slurm begin squeue-ids        squeue -h -a -t all -j <ids>   -o '%i|%T|%r|%j'
    @@rc-slurm begin squeue-names      squeue -h -a -t all -u <me> --name=<names> -o '%i|%T|%r|%j'
    @@rc-slurm begin sacct             sacct -X -P -n -o JobID,JobName,State,ExitCode,Reason -j <ids>
    @@rc-slurm begin scontrol <id>     scontrol show job -o <id>, for ids not live in squeue nor in sacct
    ...tool output (stdout and stderr)...
    @@rc-slurm exit <status>
    @@rc-slurm end

``squeue -t all`` shows live jobs and the finished ones slurmctld still remembers (``MinJobAge``).
``sacct`` covers older ones where accounting storage exists; where it does not, it prints "Slurm
accounting storage is disabled" and exits 1, which the parser ignores. When ``squeue`` cannot reach
the controller the command stops there and the parser raises ``SchedulerOutputError``: the pass
treats the cluster as not answering, so no job is ever read as lost while slurmctld is down.

The job script sets ``--no-requeue``: a job SLURM requeued after a node failure or preemption would
run the script again, and the wrapper's ``launch.lock`` would turn that second start into an empty
success. Retries are the reconciler's decision, so NODE_FAIL and PREEMPTED stay final.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.backends.scheduler import JobInfo, JobRequest, JobState, hms, submit_error
from reconciler.errors import (
    InvalidTarget,
    ReconcilerError,
    SchedulerOutputError,
)

MARK = "@@rc-slurm"
"""Prefix of the marker lines of the status and find commands."""

SQUEUE_FORMAT = "%i|%T|%r|%j"
"""Id, long state, reason, name: the name last, so a ``|`` inside it cannot shift a field."""
SACCT_FIELDS = "JobID,JobName,State,ExitCode,Reason"

STATES: Mapping[str, JobState] = {
    "PENDING": JobState.QUEUED,
    "CONFIGURING": JobState.QUEUED,
    "REQUEUED": JobState.QUEUED,
    "REQUEUE_FED": JobState.QUEUED,
    "REQUEUE_HOLD": JobState.HELD,
    "SPECIAL_EXIT": JobState.HELD,
    "RESV_DEL_HOLD": JobState.HELD,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "DEADLINE": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,
    "TIMEOUT": JobState.TIMEOUT,
    "NODE_FAIL": JobState.NODE_FAIL,
    "PREEMPTED": JobState.PREEMPTED,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,
}
"""SLURM's long state names (``squeue %T``, ``sacct State``, ``scontrol JobState``) to ours."""

SHORT_STATES: Mapping[str, str] = {
    "PD": "PENDING", "CF": "CONFIGURING", "RQ": "REQUEUED", "RF": "REQUEUE_FED", "RH": "REQUEUE_HOLD",
    "SE": "SPECIAL_EXIT", "RD": "RESV_DEL_HOLD", "R": "RUNNING", "CG": "COMPLETING", "S": "SUSPENDED",
    "ST": "STOPPED", "SI": "SIGNALING", "SO": "STAGE_OUT", "RS": "RESIZING", "CD": "COMPLETED",
    "F": "FAILED", "BF": "BOOT_FAIL", "DL": "DEADLINE", "CA": "CANCELLED", "RV": "REVOKED",
    "TO": "TIMEOUT", "NF": "NODE_FAIL", "PR": "PREEMPTED", "OOM": "OUT_OF_MEMORY",
}  # fmt: skip
"""``squeue %t`` compact codes, read too in case a site's wrapper prints them."""

HOLD_REASONS = frozenset({"JobHeldUser", "JobHeldAdmin"})
"""A PENDING job with one of these reasons is held (``scontrol hold`` / ``release``)."""

_ID = r"[0-9]+(?:_[0-9]+|_\[[0-9,\-%]+\]|\+[0-9]+)?"
_JOB_ID = re.compile(_ID + r"\Z")
_SQUEUE_LINE = re.compile(rf"(?P<id>{_ID})\|(?P<state>[^|]*)\|(?P<reason>[^|]*)\|(?P<name>.*)\Z")
_SUBMIT_LINE = re.compile(r"(?P<id>[0-9]+)(?:;[A-Za-z0-9_.\-]+)?\Z")
_STATE_WORD = re.compile(r"[A-Z][A-Z_]*\Z")
_STATUS = re.compile(r"[0-9]{1,5}\Z")
_EXIT_CODE = re.compile(r"(?P<rc>[0-9]+):(?P<sig>[0-9]+)\Z")
_KEY = re.compile(r"(?:(?<=\s)|^)(?P<key>[A-Za-z][A-Za-z0-9_:/]*)=")
_NO_VALUE = frozenset({"", "None", "(null)", "N/A"})
_GONE = ("Invalid job id specified", "already completing or completed")
"""Tool messages that mean "no such job (any more)": not a failure of the command."""

_RANK = {"sacct": 1, "squeue": 2, "scontrol": 3}
"""Which report wins for a job several tools printed: slurmctld's own view over the database's."""


@dataclass
class _Section:
    tool: str
    lines: list[str]
    status: int | None = None


class Slurm:
    """The SLURM ``Scheduler`` (see the module docstring)."""

    kind = "slurm"

    # --- job script and submission ---------------------------------------------------------

    def job_script(self, request: JobRequest) -> str:
        """``#SBATCH`` directives, module loads, then ``exec /bin/sh <wrapper>``."""
        opts = request.options
        directives = [
            f"--job-name={_value(request.name, 'job name')}",
            f"--output={_value(request.output.replace('%', '%%'), 'output path')}",
            "--open-mode=append",
            f"--chdir={_value(request.run_dir, 'run dir')}",
            f"--time={hms(max(60, request.walltime_seconds))}",
            "--no-requeue",
        ]
        if request.gpus > 0:
            directives.append(f"--gres=gpu:{request.gpus}")
        for flag, setting in (("partition", opts.queue), ("account", opts.account), ("qos", opts.qos)):
            if setting:
                directives.append(f"--{flag}={_value(setting, flag)}")
        if opts.cpus_per_gpu:
            directives.append(f"--cpus-per-task={opts.cpus_per_gpu * max(1, request.gpus)}")
        if opts.mem_gb:
            directives.append(f"--mem={math.ceil(opts.mem_gb * 1024)}M")
        lines = ["#!/bin/sh", *(f"#SBATCH {d}" for d in directives)]
        for extra in opts.extra_directives:
            _single_line(extra, "extra directive")
            lines.append(extra if extra.lstrip().startswith("#") else f"#SBATCH {extra}")
        if opts.modules:
            lines.append(_MODULE_INIT)
            lines += [f"module load {shlex.quote(_single_line(m, 'module'))}" for m in opts.modules]
        lines.append(f"exec /bin/sh {shlex.quote(_single_line(request.wrapper, 'wrapper path'))}")
        return "\n".join(lines) + "\n"

    def submit_command(self, script_path: str, request: JobRequest) -> str:
        """``sbatch --parsable <script>``: prints ``<id>`` or ``<id>;<cluster>``."""
        return f"sbatch --parsable {shlex.quote(script_path)}"

    def parse_submit(self, stdout: str) -> str:
        """The id ``sbatch --parsable`` printed (its last non-empty line)."""
        lines = [line.strip() for line in stdout.splitlines() if line.strip()]
        match = _SUBMIT_LINE.match(lines[-1]) if lines else None
        if match is None:
            raise SchedulerOutputError(f"sbatch printed no job id: {_excerpt(stdout)!r}")
        return match["id"]

    def submit_error(self, status: int, output: str) -> ReconcilerError:
        """What a failed ``sbatch`` means: the controller not answering or busy (retry later), or
        a rejection of the script (stall until the spec changes)."""
        return submit_error("sbatch", status, _excerpt(output), _TRANSIENT_SUBMIT)

    # --- status ------------------------------------------------------------------------------

    def status_command(self, job_ids: Sequence[str], names: Sequence[str]) -> str:
        """One command printing every job in ``job_ids`` or named in ``names``; exits 0 (see the
        module docstring for its framing)."""
        ids = sorted({i for i in job_ids if i}, key=_id_order)
        for job_id in ids:
            if not _JOB_ID.match(job_id):
                raise InvalidTarget(f"{job_id!r} is not a SLURM job id", "InvalidTarget")
        wanted = sorted({n for n in names if n})
        fmt = shlex.quote(SQUEUE_FORMAT)
        parts = [_STATUS_PRELUDE]
        if ids:
            id_list = shlex.quote(",".join(ids))
            parts.append(f"_rcs squeue-ids squeue -h -a -t all -j {id_list} -o {fmt}")
        if wanted:
            name_list = shlex.quote(",".join(_single_line(n, "job name") for n in wanted))
            query = f'squeue -h -a -t all -u "$(id -un)" --name={name_list} -o {fmt}'
            parts.append(f"[ $_rcs_down = 1 ] || _rcs squeue-names {query}")
        if ids:
            parts.append(f"[ $_rcs_down = 1 ] || _rcs sacct sacct -X -P -n -o {SACCT_FIELDS} -j {id_list}")
            parts.append(
                f'[ $_rcs_down = 1 ] || for _rcs_id in {" ".join(map(shlex.quote, ids))}; do case "$_rcs_seen" in '
                f'*"$_rcs_nl$_rcs_id|"*) ;; *) _rcs "scontrol $_rcs_id" scontrol show job -o "$_rcs_id" ;; esac; done'
            )
        parts.append(f"echo '{MARK} end'")
        return "(\n" + "\n".join(parts) + "\n)"

    def parse_status(self, stdout: str) -> Mapping[str, JobInfo]:
        """Jobs by id; ``SchedulerOutputError`` when the output is cut short, a tool that must
        answer failed (squeue, scontrol), or a line cannot be read."""
        best: dict[str, tuple[int, JobInfo]] = {}
        for section in _sections(stdout):
            tool = section.tool.split()[0]
            if tool in ("squeue-ids", "squeue-names"):
                found = _read_squeue(section)
                rank = _RANK["squeue"]
            elif tool == "sacct":
                found = _read_sacct(section)
                rank = _RANK["sacct"]
            elif tool == "scontrol":
                found = _read_scontrol(section)
                rank = _RANK["scontrol"]
            else:
                raise SchedulerOutputError(f"slurm status: unknown section {section.tool!r}")
            for info in found:
                best[info.job_id] = _merge(best.get(info.job_id), rank, info)
        return {job_id: info for job_id, (_, info) in best.items()}

    # --- cancel and find ---------------------------------------------------------------------

    def cancel_command(self, job_id: str) -> str:
        """``scancel <id>``; exits 0 when the job is already gone (older SLURM says "Invalid job id
        specified" with status 1, 22.05 exits 0 quietly)."""
        if not _JOB_ID.match(job_id):
            raise InvalidTarget(f"{job_id!r} is not a SLURM job id", "InvalidTarget")
        gone = "|".join(f'*"{text}"*' for text in _GONE)
        return (
            f"(_rcs_o=$(scancel {shlex.quote(job_id)} 2>&1); _rcs_s=$?; "
            '[ -z "$_rcs_o" ] || printf \'%s\\n\' "$_rcs_o" >&2; '
            f'if [ $_rcs_s -ne 0 ]; then case "$_rcs_o" in {gone}) exit 0 ;; esac; fi; exit $_rcs_s)'
        )

    def find_command(self, name: str) -> str:
        """Ids of this user's jobs named ``name`` that slurmctld knows: queued, running, and
        finished ones it still remembers (adopting a finished job beats submitting the attempt
        again). The end marker is printed only when squeue answered, so a controller that is
        down never reads as "no such job"."""
        quoted = shlex.quote(_single_line(name, "job name"))
        return f"squeue -h -a -t all -u \"$(id -un)\" --name={quoted} -o %i && echo '{MARK} end'"

    def parse_find(self, stdout: str) -> list[str]:
        """The ids ``find_command`` printed; ``SchedulerOutputError`` when squeue did not answer."""
        lines = [line.strip() for line in stdout.splitlines() if line.strip()]
        if not lines or lines[-1] != f"{MARK} end":
            raise SchedulerOutputError(f"squeue did not answer the job search: {_excerpt(stdout)!r}")
        ids: list[str] = []
        for line in lines[:-1]:
            if not _JOB_ID.match(line):
                raise SchedulerOutputError(f"squeue printed {line[:200]!r} where a job id was expected")
            if line not in ids:
                ids.append(line)
        return ids


# --- shell text ------------------------------------------------------------------------------

_MODULE_INIT = (
    "command -v module >/dev/null 2>&1 || for _rc_f in /etc/profile.d/modules.sh /etc/profile.d/lmod.sh "
    '/usr/share/lmod/lmod/init/sh; do [ -r "$_rc_f" ] && . "$_rc_f" && break; done'
)
"""``module`` is a shell function set up by the login profile; a batch ``/bin/sh`` may lack it."""

_LIVE = "|".join(sorted(word for word, state in STATES.items() if not state.finished))

_STATUS_PRELUDE = f"""\
_rcs_nl='
'
_rcs_seen=$_rcs_nl
_rcs_down=0
_rcs() {{
  _rcs_t=$1; shift
  _rcs_o=$("$@" 2>&1); _rcs_s=$?
  echo "{MARK} begin $_rcs_t"
  [ -z "$_rcs_o" ] || printf '%s\\n' "$_rcs_o"
  echo "{MARK} exit $_rcs_s"
  case $_rcs_t in
    squeue*) if [ $_rcs_s -eq 0 ]; then
      _rcs_seen=$_rcs_seen$(printf '%s\\n' "$_rcs_o" | grep -E '^[^|]*[|]({_LIVE})[|]')$_rcs_nl; else
      case $_rcs_o in *"Invalid job id specified"*) ;; *) _rcs_down=1 ;; esac; fi ;;
    sacct) [ $_rcs_s -ne 0 ] || _rcs_seen=$_rcs_seen$_rcs_o$_rcs_nl ;;
  esac
}}"""
"""Runs one tool, frames its output, remembers the jobs squeue printed as live and the jobs sacct
printed (scontrol is asked about the others: gone from both, or finished without an exit code in
squeue), and whether squeue could not reach the controller (then nothing else is asked)."""

_TRANSIENT_SUBMIT = (
    "Unable to contact slurm controller",
    "Socket timed out",
    "Slurm temporarily unable to accept job",
    "Resource temporarily unavailable",
    "QOSMaxSubmitJob",
    "AssocMaxSubmitJob",
    "job submit limit",
    "Transport endpoint is not connected",
    "Zero Bytes were transmitted or received",
)
"""sbatch messages that mean "not now" rather than "never" (controller down or busy, queue limits)."""


# --- parsing ---------------------------------------------------------------------------------


def _sections(stdout: str) -> list[_Section]:
    sections: list[_Section] = []
    current: _Section | None = None
    ended = False
    for raw in stdout.splitlines():
        line = raw.rstrip("\r")
        if line.startswith(MARK + " "):
            word, _, rest = line[len(MARK) + 1 :].partition(" ")
            if word == "begin" and rest and current is None and not ended:
                current = _Section(rest, [])
            elif word == "exit" and current is not None and _STATUS.match(rest):
                current.status = int(rest)
                sections.append(current)
                current = None
            elif word == "end" and not rest and current is None:
                ended = True
            else:
                raise SchedulerOutputError(f"slurm status: unexpected marker line {line[:200]!r}")
        elif current is not None:
            current.lines.append(line)
        # text outside a section (a probe's own lines before ours) is not ours to read
    if current is not None or not ended:
        raise SchedulerOutputError("slurm status output is cut short (no end marker): the command did not finish")
    return sections


def _failed(section: _Section, tool: str) -> SchedulerOutputError:
    text = " / ".join(line.strip() for line in section.lines if line.strip())[:500]
    return SchedulerOutputError(f"{tool} failed (exit {section.status}): {text or 'no message'}")


def _gone(section: _Section) -> bool:
    return any(text in line for line in section.lines for text in _GONE)


def _read_squeue(section: _Section) -> list[JobInfo]:
    if section.status != 0 and not _gone(section):
        raise _failed(section, "squeue")
    found = []
    for line in section.lines:
        match = _SQUEUE_LINE.match(line.strip())
        if match is not None:
            found.append(_info(match["id"], match["name"], match["state"], match["reason"], None))
        elif line.strip() and not (section.status != 0 or line.startswith(("squeue: ", "slurm_load_jobs"))):
            raise SchedulerOutputError(f"squeue printed a line that is not a job: {line[:200]!r}")
    return found


def _read_sacct(section: _Section) -> list[JobInfo]:
    if section.status != 0:
        return []  # no accounting storage ("Slurm accounting storage is disabled") or slurmdbd down
    found = []
    for line in section.lines:
        if not line.strip():
            continue
        fields = line.strip().split("|")
        if len(fields) < 5 or not _JOB_ID.match(fields[0]):
            if "." in fields[0] and _JOB_ID.match(fields[0].split(".")[0]):
                continue  # a step row (123.batch): the job's own row says it all
            raise SchedulerOutputError(f"sacct printed a line that is not a job: {line[:200]!r}")
        name = "|".join(fields[1:-3])
        found.append(_info(fields[0], name, fields[-3], fields[-1], fields[-2]))
    return found


def _read_scontrol(section: _Section) -> list[JobInfo]:
    if section.status != 0:
        if _gone(section):
            return []
        raise _failed(section, "scontrol")
    found = []
    for line in section.lines:
        if not line.strip():
            continue
        if not line.startswith("JobId="):
            raise SchedulerOutputError(f"scontrol printed a line that is not a job: {line[:200]!r}")
        fields = _key_values(line)
        job_id = fields.get("JobId", "")
        if not _JOB_ID.match(job_id) or "JobState" not in fields:
            raise SchedulerOutputError(f"scontrol printed a job without id or state: {line[:200]!r}")
        found.append(
            _info(job_id, fields.get("JobName"), fields["JobState"], fields.get("Reason"), fields.get("ExitCode"))
        )
    return found


def _key_values(line: str) -> dict[str, str]:
    """``Key=value Key2=value with spaces`` -> dict (a value runs up to the next ``Key=``)."""
    matches = list(_KEY.finditer(line))
    fields: dict[str, str] = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(line)
        fields.setdefault(match["key"], line[match.end() : end].strip())
    return fields


def _info(job_id: str, name: str | None, raw_state: str, reason: str | None, exit_code: str | None) -> JobInfo:
    raw = raw_state.strip()
    word = raw.split(" ")[0].rstrip("+") if raw else ""
    word = SHORT_STATES.get(word, word)
    if not _STATE_WORD.match(word):
        raise SchedulerOutputError(f"job {job_id}: {raw_state[:100]!r} is not a SLURM state")
    why = None if reason is None or reason.strip() in _NO_VALUE else reason.strip()
    state = STATES.get(word, JobState.UNKNOWN)
    if not state.finished:
        exit_code = None  # scontrol prints 0:0 for a job that has not ended
    if state is JobState.QUEUED and why is not None and (why in HOLD_REASONS or "held" in why.split()):
        state = JobState.HELD
    return JobInfo(
        job_id=job_id,
        name=None if name is None or name.strip() in _NO_VALUE else name.strip(),
        state=state,
        raw_state=raw,
        exit_status=_exit_status(job_id, exit_code),
        reason=why,
    )


def _exit_status(job_id: str, text: str | None) -> int | None:
    """SLURM's ``rc:signal``: the job script's exit status, or ``128 + signal`` when a signal
    ended it (as a shell reports it)."""
    if text is None or text.strip() in _NO_VALUE:
        return None
    match = _EXIT_CODE.match(text.strip())
    if match is None:
        raise SchedulerOutputError(f"job {job_id}: exit code {text[:50]!r} is not rc:signal")
    rc, sig = int(match["rc"]), int(match["sig"])
    return 128 + sig if sig else rc


def _merge(old: tuple[int, JobInfo] | None, rank: int, new: JobInfo) -> tuple[int, JobInfo]:
    if old is None:
        return rank, new
    old_rank, old_info = old
    keep, other = (new, old_info) if rank >= old_rank else (old_info, new)
    merged = JobInfo(
        job_id=keep.job_id,
        name=keep.name if keep.name is not None else other.name,
        state=keep.state,
        raw_state=keep.raw_state,
        exit_status=keep.exit_status if keep.exit_status is not None else other.exit_status,
        reason=keep.reason if keep.reason is not None else other.reason,
    )
    return max(rank, old_rank), merged


# --- small helpers ---------------------------------------------------------------------------


def _single_line(text: str, what: str) -> str:
    if "\n" in text or "\r" in text or "\0" in text:
        raise InvalidTarget(f"the {what} {text!r} spans lines: it cannot go into a job script", "InvalidTarget")
    return text


def _value(text: str, what: str) -> str:
    """A directive value: double-quoted when it holds blanks (sbatch strips the quotes)."""
    _single_line(text, what)
    if '"' in text:
        raise InvalidTarget(f"the {what} {text!r} holds a double quote: sbatch cannot read it", "InvalidTarget")
    return f'"{text}"' if any(c.isspace() for c in text) else text


def _id_order(job_id: str) -> tuple[int, str]:
    head = re.match(r"[0-9]+", job_id)
    return (int(head.group()) if head else 0, job_id)


def _excerpt(text: str) -> str:
    return " / ".join(line.strip() for line in text.splitlines() if line.strip())[:500]


__all__ = ["HOLD_REASONS", "MARK", "STATES", "Slurm"]
