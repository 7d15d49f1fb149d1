"""What SLURM's tools print, read: ``sbatch --parsable``, the framed status command's sections
(``squeue``, ``sacct``, ``scontrol show job -o``) and the job search. Pure; the commands that
produce this text are built in ``backends.slurm`` (see its docstring for the framing).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.backends.scheduler import JobInfo, JobState
from reconciler.errors import SchedulerOutputError

MARK = "@@rc-slurm"
"""Prefix of the marker lines of the status and find commands."""

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
JOB_ID = re.compile(_ID + r"\Z")
_SQUEUE_LINE = re.compile(rf"(?P<id>{_ID})\|(?P<state>[^|]*)\|(?P<reason>[^|]*)\|(?P<name>.*)\Z")
_SUBMIT_LINE = re.compile(r"(?P<id>[0-9]+)(?:;[A-Za-z0-9_.\-]+)?\Z")
_STATE_WORD = re.compile(r"[A-Z][A-Z_]*\Z")
_STATUS = re.compile(r"[0-9]{1,5}\Z")
_EXIT_CODE = re.compile(r"(?P<rc>[0-9]+):(?P<sig>[0-9]+)\Z")
_KEY = re.compile(r"(?:(?<=\s)|^)(?P<key>[A-Za-z][A-Za-z0-9_:/]*)=")
_NO_VALUE = frozenset({"", "None", "(null)", "N/A"})
GONE = ("Invalid job id specified", "already completing or completed")
"""Tool messages that mean "no such job (any more)": not a failure of the command."""

_RANK = {"sacct": 1, "squeue": 2, "scontrol": 3}
"""Which report wins for a job several tools printed: slurmctld's own view over the database's."""


@dataclass
class _Section:
    tool: str
    lines: list[str]
    status: int | None = None


def parse_submit(stdout: str) -> str:
    """The id ``sbatch --parsable`` printed (its last non-empty line)."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    match = _SUBMIT_LINE.match(lines[-1]) if lines else None
    if match is None:
        raise SchedulerOutputError(f"sbatch printed no job id: {excerpt(stdout)!r}")
    return match["id"]


def parse_status(stdout: str) -> Mapping[str, JobInfo]:
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


def parse_find(stdout: str) -> list[str]:
    """The ids ``find_command`` printed; ``SchedulerOutputError`` when squeue did not answer."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines or lines[-1] != f"{MARK} end":
        raise SchedulerOutputError(f"squeue did not answer the job search: {excerpt(stdout)!r}")
    ids: list[str] = []
    for line in lines[:-1]:
        if not JOB_ID.match(line):
            raise SchedulerOutputError(f"squeue printed {line[:200]!r} where a job id was expected")
        if line not in ids:
            ids.append(line)
    return ids


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
    return any(text in line for line in section.lines for text in GONE)


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
        if len(fields) < 5 or not JOB_ID.match(fields[0]):
            if "." in fields[0] and JOB_ID.match(fields[0].split(".")[0]):
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
        if not JOB_ID.match(job_id) or "JobState" not in fields:
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


def excerpt(text: str) -> str:
    return " / ".join(line.strip() for line in text.splitlines() if line.strip())[:500]


__all__ = ["GONE", "HOLD_REASONS", "JOB_ID", "MARK", "STATES", "excerpt", "parse_find", "parse_status", "parse_submit"]
