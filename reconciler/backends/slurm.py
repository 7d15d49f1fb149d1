"""The SLURM adapter: job script and ``sbatch``/``squeue``/``sacct``/``scontrol``/``scancel`` command
text (the builders; what the tools print is read in ``backends.slurm_output``). Pure: nothing here
runs a process (``BatchRunner`` sends the text through the transport).

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

from reconciler.backends import slurm_output as output
from reconciler.backends.scheduler import JobInfo, JobRequest, hms, submit_error
from reconciler.backends.slurm_output import GONE, HOLD_REASONS, JOB_ID, MARK, STATES, excerpt
from reconciler.errors import InvalidTarget, ReconcilerError

SQUEUE_FORMAT = "%i|%T|%r|%j"
"""Id, long state, reason, name: the name last, so a ``|`` inside it cannot shift a field."""
SACCT_FIELDS = "JobID,JobName,State,ExitCode,Reason"


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
        return output.parse_submit(stdout)

    def submit_error(self, status: int, output: str) -> ReconcilerError:
        """What a failed ``sbatch`` means: the controller not answering or busy (retry later), or
        a rejection of the script (stall until the spec changes)."""
        return submit_error("sbatch", status, excerpt(output), _TRANSIENT_SUBMIT)

    # --- status ------------------------------------------------------------------------------

    def status_command(self, job_ids: Sequence[str], names: Sequence[str]) -> str:
        """One command printing every job in ``job_ids`` or named in ``names``; exits 0 (see the
        module docstring for its framing)."""
        ids = sorted({i for i in job_ids if i}, key=_id_order)
        for job_id in ids:
            if not JOB_ID.match(job_id):
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
        return output.parse_status(stdout)

    # --- cancel and find ---------------------------------------------------------------------

    def cancel_command(self, job_id: str) -> str:
        """``scancel <id>``; exits 0 when the job is already gone (older SLURM says "Invalid job id
        specified" with status 1, 22.05 exits 0 quietly)."""
        if not JOB_ID.match(job_id):
            raise InvalidTarget(f"{job_id!r} is not a SLURM job id", "InvalidTarget")
        gone = "|".join(f'*"{text}"*' for text in GONE)
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
        return output.parse_find(stdout)


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


__all__ = ["HOLD_REASONS", "MARK", "STATES", "Slurm"]
