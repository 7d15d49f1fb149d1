"""Pure builder and parser of the environment check (apply stage: ``CheckEnv``; ``reconcile env-check``).

``ShellRunner.env_check`` sends ``env_check_script`` as one remote command and turns its output
into an ``EnvVerdict`` with ``parse_env_check``. The script, in the commit's code dir:

1. reports the host and the free disk, and stops with ``fail code`` unless ``.complete`` is there;
2. activates the environment exactly as the run wrapper does (``wrapper.activation_lines`` and
   ``wrapper.conda_prefix``: one builder, so the check and the launch cannot drift);
3. runs ``python3 --version`` (the target's ``python``) and ``nvidia-smi`` (GPU indices);
4. runs the config's ``env_check.command`` (when one is named; as written, no flag added) under
   ``timeout`` (exit 124: too slow), with ``CUDA_VISIBLE_DEVICES`` empty and
   ``RECONCILER_DRY_RUN=1``. No experiment's command is run: the check is the target's.

Output: marker lines ``<MARK>-<nonce> <words>`` (``host``, ``disk_kb``, ``fail code``,
``activated``, ``step <name> <rc>``), each ``step`` followed by the last lines of its output.
Stdout and stderr are merged. Nothing here runs; all quoting goes through ``shlex.quote``.
"""

from __future__ import annotations

import math
import posixpath
import re
import shlex
from dataclasses import dataclass, field

from reconciler.backends import wrapper
from reconciler.backends.gpus import GPU_QUERY, parse_gpu_query
from reconciler.backends.scripts import python_words, root_expr
from reconciler.model.actions import CheckEnv
from reconciler.model.config import GpuPolicy, Target
from reconciler.model.env import ENV_FAILED, ENV_READY, EnvVerdict

MARK = "@@reconciler-envcheck"
TAIL = 20
"""Output lines kept per step (the evidence of a failing step)."""
GPU_LINES = 256
TIMEOUT_EXIT = 124
_ERROR_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*)$")


CHECK_STEP = "check"


def env_check_script(action: CheckEnv, target: Target, project: str, timeout: float, nonce: str) -> str:
    """The one remote command of an environment check (see the module docstring)."""
    q = shlex.quote
    env = target.env
    code = action.code_dir
    code_word = q(code) if posixpath.isabs(code) else root_expr(code)
    run_in_env = wrapper.conda_prefix(env)
    secs = max(1, math.ceil(timeout))
    exports = [("RECONCILER_PROJECT", project), ("RECONCILER_DRY_RUN", "1"), ("CUDA_VISIBLE_DEVICES", "")]
    activation = "\n".join("    " + line for line in wrapper.activation_lines(env)) or "    :"
    conda_check = ""
    if env.conda:
        conda_check = f"    {run_in_env}true || {{ echo {q(f'conda env {env.conda} does not run')}; exit 115; }}\n"
    smi = " ".join(q(word) for word in GPU_QUERY)
    check = ""
    if action.command:
        check = f"  _rc_step {CHECK_STEP} {TAIL} _rc_lim {secs} {run_in_env}sh -c {q(action.command)}"
    return f"""exec 2>&1
_rc_m={q(f"{MARK}-{nonce}")}
_rc_d={code_word}
_rc_say() {{ printf '%s %s\\n' "$_rc_m" "$*"; }}
_rc_say host "$(uname -n)"
_rc_p="$_rc_d"
while [ ! -d "$_rc_p" ] && [ "$_rc_p" != / ] && [ "$_rc_p" != . ]; do _rc_p=$(dirname "$_rc_p"); done
_rc_say disk_kb "$(df -Pk "$_rc_p" 2>/dev/null | awk 'NR == 2 {{ print $4 }}')"
if [ ! -f "$_rc_d"/.complete ]; then _rc_say fail code; exit 0; fi
cd "$_rc_d" || {{ _rc_say fail code; exit 0; }}
_rc_o=$(mktemp "${{TMPDIR:-/tmp}}/reconciler-env.XXXXXX") || {{ _rc_say fail tmp; exit 0; }}
trap 'rm -f "$_rc_o"' EXIT
if command -v timeout >/dev/null 2>&1; then
  _rc_lim() {{ timeout -k 5 "$@"; }}
else
  _rc_lim() {{ shift; "$@"; }}; _rc_say note no-timeout
fi
(
  {{
{activation}
{conda_check}  }} > "$_rc_o" 2>&1 </dev/null
  _rc_say activated
  _rc_step() {{
    _rc_n=$1; _rc_k=$2; shift 2
    "$@" > "$_rc_o" 2>&1 </dev/null; _rc_r=$?
    _rc_say step "$_rc_n" "$_rc_r"; tail -n "$_rc_k" "$_rc_o"
  }}
  _rc_step python {TAIL} {run_in_env}{python_words(target.python)} --version
  if command -v nvidia-smi >/dev/null 2>&1; then
    _rc_step gpus {GPU_LINES} _rc_lim 30 {smi}
  else
    _rc_say step gpus 127
  fi
{chr(10).join(f"  export {name}={q(value)}" for name, value in exports)}
  {wrapper.runtime_path_line('"$_rc_d"')}
{check}
  _rc_say done
  exit 0
)
_rc_r=$?
if [ "$_rc_r" -ne 0 ]; then _rc_say step activate "$_rc_r"; tail -n {TAIL} "$_rc_o"; fi
exit 0
"""


@dataclass
class _Output:
    """The script's output, split at its marker lines."""

    facts: dict[str, str] = field(default_factory=dict)
    steps: dict[str, tuple[int, list[str]]] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)


def _split(stdout: str, nonce: str) -> _Output:
    mark = f"{MARK}-{nonce} "
    out = _Output()
    current: list[str] | None = None
    for line in stdout.splitlines():
        if not line.startswith(mark):
            if current is not None:
                current.append(line)
            continue
        words = line[len(mark) :].split(" ", 1)
        head, rest = words[0], (words[1] if len(words) > 1 else "")
        current = None
        if head == "step":
            name, _, rc = rest.partition(" ")
            current = []
            out.steps[name] = (int(rc) if rc.strip().lstrip("-").isdigit() else -1, current)
        elif head in ("host", "disk_kb"):
            out.facts[head] = rest.strip()
        else:
            out.flags.add(f"{head} {rest}".strip())
    return out


def usable_gpus(text: str, policy: GpuPolicy) -> tuple[int, ...]:
    """GPU indices from ``GPU_QUERY`` output, without blacklisted indices and model names."""
    banned = [m.lower() for m in policy.blacklist_models]
    return tuple(
        g.index
        for g in parse_gpu_query(text)
        if g.index not in policy.blacklist and not any(m in g.name.lower() for m in banned)
    )


def reason_line(lines: list[str]) -> str | None:
    """The most telling line of a failure: the last ``SomethingError: ...`` line, else the last line."""
    for line in reversed(lines):
        match = _ERROR_LINE.match(line)
        if match:
            return match.group(1).strip()
    for line in reversed(lines):
        if line.strip():
            return line.strip()
    return None


def _failure(out: _Output, action: CheckEnv, python: str, timeout: float) -> tuple[str, list[str]] | None:
    """(reason, evidence) of the first failing step, or None when every step passed."""
    if "fail code" in out.flags:
        return f"code {action.commit} not on the target ({action.code_dir}/.complete missing)", []
    if "fail tmp" in out.flags:
        return "cannot create a temporary file on the target", []
    if "activated" not in out.flags:
        rc, lines = out.steps.get("activate", (-1, []))
        return f"environment activation failed (exit {rc})", lines
    rc, lines = out.steps.get("python", (-1, []))
    if rc != 0:
        if rc == 127:
            return f"{python} not found on the target", lines
        return f"{python} --version failed (exit {rc})", lines
    if CHECK_STEP not in out.steps if action.command else "done" not in out.flags:
        rc, lines = out.steps.get("activate", (-1, []))
        return f"the environment check stopped early (exit {rc})", lines
    if not action.command:
        return None
    rc, lines = out.steps[CHECK_STEP]
    if rc == TIMEOUT_EXIT:
        return f"env_check.command did not finish within {max(1, math.ceil(timeout))} s", lines
    if rc != 0:
        return reason_line(lines) or f"env_check.command failed (exit {rc})", lines
    return None


def parse_env_check(
    stdout: str, nonce: str, action: CheckEnv, target: Target, checked_at: str, timeout: float, stderr: str = ""
) -> EnvVerdict:
    """The verdict from the script's output. ``evidence`` is the failing step's last lines,
    ending with the one-line reason (also in ``notes``)."""
    out = _split(stdout, nonce)
    notes: list[str] = []
    if "host" not in out.facts:
        tail = (stdout + "\n" + stderr).splitlines()[-TAIL:]
        failure: tuple[str, list[str]] | None = ("the environment check did not run", tail)
    else:
        failure = _failure(out, action, target.python, timeout)
    version = None
    rc, lines = out.steps.get("python", (-1, []))
    if rc == 0:
        found = re.search(r"Python\s+(\S+)", "\n".join(lines))
        version = found.group(1) if found else None
    gpus: tuple[int, ...] = ()
    rc, lines = out.steps.get("gpus", (-1, []))
    if rc == 0:
        gpus = usable_gpus("\n".join(lines), target.gpus)
    elif rc not in (-1, 127):
        notes.append(f"nvidia-smi failed (exit {rc}): {reason_line(lines) or ''}".rstrip(": "))
    if "note no-timeout" in out.flags:
        notes.append("no timeout command on the target: env_check.command was not time-limited")
    disk = out.facts.get("disk_kb", "")
    evidence: tuple[str, ...] = ()
    if failure is not None:
        reason, lines = failure
        kept = [line for line in lines if line.strip()][-TAIL:]
        if not kept or kept[-1].strip() != reason:
            kept.append(reason)
        evidence = tuple(kept)
        notes.insert(0, reason)
    return EnvVerdict(
        target=target.name,
        status=ENV_FAILED if failure is not None else ENV_READY,
        checked_commit=action.commit,
        checked_at=checked_at,
        env_hash=action.env_hash,
        host=out.facts.get("host") or None,
        python=version,
        available_gpus=gpus,
        dry_run_passed=out.steps.get(CHECK_STEP, (-1, []))[0] == 0,
        dry_run_command=action.command or None,
        evidence=evidence,
        notes="; ".join(notes),
        remote_project_dir=action.code_dir,
        free_disk_gb=round(int(disk) / 1024**2, 1) if disk.isdigit() else None,
    )
