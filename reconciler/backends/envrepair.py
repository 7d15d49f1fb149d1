"""Pure builder and parser of the environment repair ladder (``env.repair``, issue 18 item 4).

When a target's environment check fails because the environment or a module is missing
(``repairable``) and the target's config allows it, ``ShellRunner.env_check`` sends
``repair_script`` as one remote command, then checks again. The script, in the commit's code dir,
with the target's setup lines and variables but without its venv or conda env (they may not exist
yet), runs each command of the ladder in
order under ``timeout`` (exit 124 when it runs over) and stops at the first that fails. Output:
``<MARK>-<nonce> step <i> <rc> <seconds>`` after each command, preceded by its last lines.

``default_ladder`` is the seed's ladder for the target's env (``repair: true``): the conda env
updated or created from ``environment.yml``, then ``pip install -r requirements.txt`` in it; a
venv created, then the same in it; each step only when its file is in the code. Nothing here
runs; all quoting goes through ``shlex.quote``.
"""

from __future__ import annotations

import dataclasses
import math
import posixpath
import re
import shlex

from reconciler.backends import wrapper
from reconciler.backends.scripts import python_words, root_expr
from reconciler.model.actions import CheckEnv
from reconciler.model.config import EnvActivation, Target
from reconciler.model.env import EnvVerdict, RepairRecord, RepairStep

MARK = "@@reconciler-envrepair"
TAIL = 30
"""Output lines kept per command."""

_MISSING = re.compile(
    r"ModuleNotFoundError|ImportError|No module named|EnvironmentLocationNotFound|"
    r"[Cc]ould not find conda environment|conda env .* does not run|No such file or directory.*/bin/activate|"
    r"environment activation failed|not found on the target",
)


def repairable(verdict: EnvVerdict) -> bool:
    """The check failed because the environment or a module is missing (what a repair ladder
    can fix); not for missing code, a full disk, a timeout or the job's own errors."""
    if verdict.ready:
        return False
    return any(_MISSING.search(line) for line in (*verdict.evidence, verdict.notes))


def default_ladder(env: EnvActivation, python: str) -> tuple[str, ...]:
    """The seed's ladder for ``env`` (``repair: true``)."""
    q = shlex.quote
    py = python_words(python)
    if env.conda:
        name = q(env.conda)
        conda = '"${CONDA_EXE:-conda}"'
        return (
            f"if [ -f environment.yml ]; then {conda} env update -n {name} -f environment.yml --prune"
            f" || {conda} env create -n {name} -f environment.yml; fi",
            f"if [ -f requirements.txt ]; then {conda} run -n {name} python -m pip install -r requirements.txt; fi",
        )
    if env.venv:
        venv = q(env.venv)
        pip = q(posixpath.join(env.venv, "bin", "python"))
        return (
            f"[ -x {pip} ] || {py} -m venv {venv}",
            f"if [ -f requirements.txt ]; then {pip} -m pip install -r requirements.txt; fi",
        )
    return (f"if [ -f requirements.txt ]; then {py} -m pip install -r requirements.txt; fi",)


def ladder(action: CheckEnv, target: Target) -> tuple[str, ...]:
    """The commands the action's repair runs: the config's, else the default ladder."""
    if action.repair is None:
        return ()
    return action.repair.commands or default_ladder(target.env, target.python)


def repair_script(action: CheckEnv, target: Target, nonce: str) -> str:
    """The one remote command of the ladder (see the module docstring)."""
    q = shlex.quote
    code = action.code_dir
    code_word = q(code) if posixpath.isabs(code) else root_expr(code)
    secs = max(1, math.ceil(action.repair.timeout_seconds if action.repair else 900.0))
    steps = "\n".join(f"_rc_step {i} sh -c {q(command)} || exit 0" for i, command in enumerate(ladder(action, target)))
    # the target's setup lines and variables (``module load``, conda's profile), not its venv
    setup = "\n".join(wrapper.activation_lines(dataclasses.replace(target.env, venv=None)))
    return f"""exec 2>&1
_rc_m={q(f"{MARK}-{nonce}")}
cd {code_word} || {{ printf '%s nocode\\n' "$_rc_m"; exit 0; }}
_rc_o=$(mktemp "${{TMPDIR:-/tmp}}/reconciler-repair.XXXXXX") || exit 0
trap 'rm -f "$_rc_o"' EXIT
{setup}
if command -v timeout >/dev/null 2>&1; then _rc_lim() {{ timeout -k 10 {secs} "$@"; }}; else _rc_lim() {{ "$@"; }}; fi
_rc_step() {{
  _rc_i=$1; shift
  _rc_t0=$(date +%s)
  _rc_lim "$@" > "$_rc_o" 2>&1 </dev/null; _rc_r=$?
  tail -n {TAIL} "$_rc_o"
  printf '%s step %s %s %s\\n' "$_rc_m" "$_rc_i" "$_rc_r" "$(( $(date +%s) - _rc_t0 ))"
  return $_rc_r
}}
{steps}
"""


def parse_repair(stdout: str, nonce: str, action: CheckEnv, target: Target, reason: str, at: str) -> RepairRecord:
    """What ran (each command's exit code, seconds and last lines); ``ready`` is set by the caller
    after the second check."""
    commands = ladder(action, target)
    mark = f"{MARK}-{nonce} "
    steps: list[RepairStep] = []
    lines: list[str] = []
    for line in stdout.splitlines():
        if not line.startswith(mark):
            lines.append(line[-500:])
            continue
        words = line[len(mark) :].split()
        if len(words) == 4 and words[0] == "step" and all(w.lstrip("-").isdigit() for w in words[1:]):
            index, rc, secs = int(words[1]), int(words[2]), int(words[3])
            if 0 <= index < len(commands):
                steps.append(RepairStep(commands[index], rc, float(secs), tuple(lines[-TAIL:])))
        elif words[:1] == ["nocode"]:
            steps.append(RepairStep("cd " + action.code_dir, 1, 0.0, ("the code dir is missing",)))
        lines = []
    return RepairRecord(commit=action.commit, env_hash=action.env_hash, at=at, reason=reason, steps=tuple(steps))
