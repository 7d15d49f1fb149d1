"""The ``command`` adapter: a platform with its own job CLI, described by templates (pure).

For platforms that are neither SLURM nor PBS, such as the seed's C500 (``sco acp jobs create``,
``list``, ``stop``; seed-system.md 3.9): the config gives shell templates for submit, status,
cancel and (optionally) find, a regex that pulls the job id out of the submit output, a regex that
pulls the state word out of a job's status output, and a map from those words to ``JobState``.
The seed's C500 bugs this addresses (10.17): queued states not recognised (here every word is
mapped or kept as ``unknown`` with the raw word as evidence, never read as "missing"), and state
names that differ between files (the map is configuration).

Placeholders are filled with ``shlex.quote``-d values: ``{script}``, ``{name}``, ``{run_dir}``,
``{wrapper}``, ``{output}``, ``{walltime}`` (``HH:MM:SS``), ``{walltime_seconds}``, ``{gpus}``,
``{queue}``, ``{account}`` in submit; ``{job_id}`` (alias ``{job}``) in status and cancel;
``{name}`` in find. ``{{``/``}}`` are literal braces.

Status of several jobs is one command: the status template once per job, each output between
``@@cmd-job@@ <id>`` and ``@@cmd-rc@@ <exit>`` marker lines; ``find`` blocks for the names.
"""

from __future__ import annotations

import re
import shlex
import string
from collections.abc import Mapping, Sequence

from reconciler.backends.scheduler import JobInfo, JobRequest, JobState, hms, submit_error
from reconciler.errors import InvalidTarget, ReconcilerError, SchedulerOutputError
from reconciler.model.config import CommandTemplates

JOB_MARK = "@@cmd-job@@"
FIND_MARK = "@@cmd-find@@"
RC_MARK = "@@cmd-rc@@"

SUBMIT_FIELDS = frozenset(
    {"script", "name", "run_dir", "wrapper", "output", "walltime", "walltime_seconds", "gpus", "queue", "account"}
)
JOB_FIELDS = frozenset({"job_id", "job"})
FIND_FIELDS = frozenset({"name"})


def fields(template: str) -> set[str]:
    """The placeholder names a template uses (``InvalidTarget`` when it is not a valid format)."""
    try:
        return {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise InvalidTarget(f"template {template!r}: {exc}", "InvalidTarget") from exc


def fill(template: str, values: Mapping[str, str]) -> str:
    """``template`` with every placeholder replaced by its shell-quoted value."""
    unknown = fields(template) - set(values)
    if unknown:
        raise InvalidTarget(f"template {template!r}: unknown placeholder(s) {sorted(unknown)}", "InvalidTarget")
    return template.format_map({k: shlex.quote(v) for k, v in values.items()})


def _compile(pattern: str, what: str, flags: int = 0) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise InvalidTarget(f"{what} {pattern!r} is not a valid regex: {exc}", "InvalidTarget") from exc


def _word(match: re.Match[str]) -> str:
    return (match.group(1) if match.re.groups else match.group(0)) or ""


class CommandTemplate:
    """A ``Scheduler`` from ``CommandTemplates`` (see the module docstring)."""

    kind = "command"

    def __init__(self, templates: CommandTemplates) -> None:
        self.templates = templates
        self.job_id = _compile(templates.job_id_regex, "job_id_regex")
        self.state = _compile(templates.state_regex, "state_regex", re.MULTILINE)
        self.states: dict[str, JobState] = {}
        for word, value in templates.states:
            try:
                self.states[word] = JobState(value)
            except ValueError as exc:
                raise InvalidTarget(f"states: {word!r} maps to unknown state {value!r}", "InvalidTarget") from exc
        self._folded = {word.casefold(): state for word, state in self.states.items()}
        for template, allowed in (
            (templates.submit, SUBMIT_FIELDS),
            (templates.status, JOB_FIELDS),
            (templates.cancel, JOB_FIELDS),
            (templates.find, FIND_FIELDS),
        ):
            unknown = fields(template) - allowed
            if unknown:
                raise InvalidTarget(f"template {template!r}: unknown placeholder(s) {sorted(unknown)}", "InvalidTarget")

    def map_state(self, word: str) -> JobState:
        return self.states.get(word) or self._folded.get(word.casefold(), JobState.UNKNOWN)

    # ---- builders ---------------------------------------------------------------------------

    def job_script(self, request: JobRequest) -> str:
        modules = [f"module load {shlex.quote(m)}" for m in request.options.modules]
        return "\n".join(["#!/bin/sh", *modules, f"exec /bin/sh {shlex.quote(request.wrapper)}", ""])

    def submit_command(self, script_path: str, request: JobRequest) -> str:
        values = {
            "script": script_path,
            "name": request.name,
            "run_dir": request.run_dir,
            "wrapper": request.wrapper,
            "output": request.output,
            "walltime": hms(request.walltime_seconds),
            "walltime_seconds": str(request.walltime_seconds),
            "gpus": str(request.gpus),
            "queue": request.options.queue or "",
            "account": request.options.account or "",
        }
        return fill(self.templates.submit, values)

    def cancel_command(self, job_id: str) -> str:
        return fill(self.templates.cancel, {"job_id": job_id, "job": job_id})

    def find_command(self, name: str) -> str:
        if not self.templates.find:
            return "true"
        return fill(self.templates.find, {"name": name})

    def status_command(self, job_ids: Sequence[str], names: Sequence[str]) -> str:
        blocks = [
            f'echo {shlex.quote(f"{JOB_MARK} {i}")}; ({self.status_one(i)}) 2>&1; echo "{RC_MARK} $?"' for i in job_ids
        ]
        if self.templates.find:
            blocks += [
                f'echo {shlex.quote(f"{FIND_MARK} {n}")}; ({self.find_command(n)}) 2>&1; echo "{RC_MARK} $?"'
                for n in names
            ]
        return "; ".join([*blocks, "true"])

    def status_one(self, job_id: str) -> str:
        """The status template for one job."""
        return fill(self.templates.status, {"job_id": job_id, "job": job_id})

    # ---- parsers ----------------------------------------------------------------------------

    def submit_error(self, status: int, output: str) -> ReconcilerError:
        """What a failed submit template means: the words most schedulers use for "not now"
        (a controller away, a limit reached) make it wait; anything else is a rejection."""
        tool = self.templates.submit.split(None, 1)[0] if self.templates.submit.strip() else "submit"
        return submit_error(tool, status, output, _TRANSIENT_SUBMIT)

    def parse_submit(self, stdout: str) -> str:
        match = self.job_id.search(stdout)
        if match is None or not _word(match).strip():
            raise SchedulerOutputError(f"no job id ({self.templates.job_id_regex}) in: {stdout.strip()[:200]!r}")
        return _word(match).strip()

    def parse_find(self, stdout: str) -> list[str]:
        ids: list[str] = []
        for match in self.job_id.finditer(stdout):
            word = _word(match).strip()
            if word and word not in ids:
                ids.append(word)
        return ids

    def parse_status(self, stdout: str) -> Mapping[str, JobInfo]:
        """One ``JobInfo`` per job whose status output holds a state word; a job without one is
        not reported (the platform does not know it: the caller decides when that means lost)."""
        blocks: list[tuple[str, str, list[str]]] = []
        for line in stdout.splitlines():
            if line.startswith(JOB_MARK + " ") or line.startswith(FIND_MARK + " "):
                kind = "job" if line.startswith(JOB_MARK) else "find"
                blocks.append((kind, line.split(" ", 1)[1].strip(), []))
            elif line.startswith(RC_MARK):
                continue
            elif blocks:
                blocks[-1][2].append(line)
            elif line.strip():
                raise SchedulerOutputError(f"status output outside any job block: {line[:80]!r}")
        jobs: dict[str, JobInfo] = {}
        found: dict[str, str] = {}
        for kind, key, lines in blocks:
            text = "\n".join(lines)
            if kind == "find":
                for job_id in self.parse_find(text):
                    found.setdefault(job_id, key)
                continue
            match = self.state.search(text)
            if match is None or not _word(match).strip():
                continue
            word = _word(match).strip()
            jobs[key] = JobInfo(job_id=key, name=None, state=self.map_state(word), raw_state=word)
        for job_id, name in found.items():
            if job_id not in jobs:  # listed by name only: alive, state not asked
                jobs[job_id] = JobInfo(job_id, name, JobState.UNKNOWN, "", reason="found by name")
            elif jobs[job_id].name is None:
                info = jobs[job_id]
                jobs[job_id] = JobInfo(info.job_id, name, info.state, info.raw_state, info.exit_status, info.reason)
        return jobs


_TRANSIENT_SUBMIT = (
    "temporarily",
    "try again",
    "timed out",
    "cannot connect",
    "unable to contact",
    "Connection refused",
    "would exceed",
)
"""Submit messages that mean "not now" for a scheduler known only by its templates."""
