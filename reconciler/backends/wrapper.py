"""Pure builders for the apply stage's launch: the run wrapper and the two launch commands.

A launch is two remote commands. ``prepare_script`` creates the attempt's run dir, claims it with
the token (refusing a dir that holds another token), and writes ``launch.json`` (what this launch
chose: GPUs, command, commit, VRAM estimate; a pass that dies after starting the run adopts it
from there), ``wrapper.sh`` (sent on stdin) and ``result_path``, each atomically.
``start_script`` starts the wrapper detached under ``setsid`` and waits for it to record its pid
and start time. The wrapper's first act, ``mkdir launch.lock || exit 0``,
makes a second start of the same attempt a no-op, whoever issues it: that is the exactly-once
launch of the design (invariant 1).

Everything here returns text; nothing runs. All quoting goes through ``shlex.quote``.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex

from reconciler.backends.scripts import receive_stdin, root_expr
from reconciler.errors import PermanentError
from reconciler.model.actions import Launch
from reconciler.model.config import EnvActivation
from reconciler.runtime.bundle import BUNDLE_DIR

FOREIGN_TOKEN_EXIT = 98
"""``prepare_script`` exits with this when the run dir belongs to another token."""
HEARTBEAT_SECONDS = 15

# The wrapper's memory cgroup and its OOM-kill count at start (``oom_watch``): the probe compares
# the count when the run ends with exit 137, the only evidence that the kernel's OOM killer (not
# a person's ``kill -9``) ended it. cgroup v2 first (``0::/path``), else the v1 memory controller.
OOM_WATCH = (
    "c=$(sed -n 's/^0:://p' /proc/self/cgroup 2>/dev/null); f=/sys/fs/cgroup$c/memory.events; "
    '[ -n "$c" ] && [ -r "$f" ] || { c=$(sed -n \'s/^[0-9]*:[^:]*memory[^:]*://p\' /proc/self/cgroup 2>/dev/null); '
    "f=/sys/fs/cgroup/memory$c/memory.oom_control; }; "
    '[ -r "$f" ] && { printf \'%s\\n\' "$f"; sed -n \'s/^oom_kill //p\' "$f"; } > oom_watch.tmp 2>/dev/null '
    "&& mv -f oom_watch.tmp oom_watch; rm -f oom_watch.tmp"
)

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_RESERVED = frozenset({"EXP_ID", "RECONCILER_RUN_DIR", "RECONCILER_ATTEMPT", "RECONCILER_PROJECT"})

# The start time of the shell's own process: field 22 of /proc/$$/stat read after the last ')'
# (the probe and the kill script read it the same way), or ``ps -o lstart=`` without /proc.
START_TIME = (
    "if [ -r /proc/$$/stat ]; then sed 's/.*) //' /proc/$$/stat | cut -d' ' -f20; "
    "else ps -o lstart= -p $$ | sed 's/^ *//'; fi"
)


def result_path(action: Launch) -> str:
    """Absolute path of the run's result file: ``<run_dir>/<result_file>``."""
    rel = posixpath.normpath(action.result_file)
    if rel.startswith(("/", "..")) or rel == ".":
        raise PermanentError(f"result_file {action.result_file!r} must stay inside the run dir", "InvalidSpec")
    return posixpath.join(action.run_dir, rel)


def _check(action: Launch) -> None:
    for label, path in (("run_dir", action.run_dir), ("code_dir", action.code_dir)):
        if not posixpath.isabs(path):
            raise PermanentError(f"{label} {path!r} is not absolute", "InvalidSpec")
    if not action.token or any(c.isspace() for c in action.token):
        raise PermanentError(f"token {action.token!r} must be a non-empty word", "InvalidSpec")
    for name, _ in action.env:
        if not _ENV_NAME.match(name) or name in _RESERVED:
            raise PermanentError(f"environment variable name {name!r} is not allowed", "InvalidSpec")


def _exports(pairs: tuple[tuple[str, str], ...]) -> list[str]:
    lines = []
    for name, value in pairs:
        if not _ENV_NAME.match(name):
            raise PermanentError(f"environment variable name {name!r} is not valid", "InvalidTarget")
        lines.append(f"export {name}={shlex.quote(value)}")
    return lines


def job_lines(action: Launch, env: EnvActivation, project: str) -> list[str]:
    """The body of the job's subshell: environment, directories, then ``exec`` of the command.

    Variables are exported before the command starts (the seed's ``conda run -n ENV
    CUDA_VISIBLE_DEVICES=N cmd`` passed them as arguments, which never set them).
    """
    q = shlex.quote
    lines = [f"cd {q(action.code_dir)} || exit 112"]
    lines += activation_lines(env)
    lines += _exports(action.env)
    lines.append(runtime_path_line(q(action.code_dir)))
    ours = [
        ("EXP_ID", action.exp_id),
        ("RECONCILER_RUN_DIR", action.run_dir),
        ("RECONCILER_ATTEMPT", str(action.attempt)),
        ("RECONCILER_PROJECT", project),
    ]
    if action.gpus:
        ours.append(("CUDA_VISIBLE_DEVICES", ",".join(str(g) for g in action.gpus)))
    lines += _exports(tuple(ours))
    dirs = [posixpath.dirname(result_path(action))]
    if action.checkpoint_dir:
        dirs.append(action.checkpoint_dir)
    lines.append(f"mkdir -p {' '.join(q(d) for d in dirs)} || exit 114")
    lines.append(f"exec {conda_prefix(env)}sh -c {q(action.command)}")
    return lines


def runtime_path_line(code_dir_word: str) -> str:
    """Put the job-side runtime (``reconciler.runtime``, shipped inside the code dir by the
    engine) first on ``PYTHONPATH``; ``code_dir_word`` is an already quoted shell word."""
    return f'export PYTHONPATH={code_dir_word}/{BUNDLE_DIR}"${{PYTHONPATH:+:$PYTHONPATH}}"'


def activation_lines(env: EnvActivation) -> list[str]:
    """The target's environment activation, run in the code dir before the command: setup
    lines, variables, then the venv (a venv that cannot be sourced exits 113). The launch's
    wrapper and the environment check (``envcheck``) both use it, so they cannot drift."""
    lines = list(env.setup)
    lines += _exports(env.variables)
    if env.venv:
        lines.append(f". {shlex.quote(posixpath.join(env.venv, 'bin', 'activate'))} || exit 113")
    return lines


def conda_prefix(env: EnvActivation) -> str:
    """What goes before a command to run it in the target's conda env (empty without conda)."""
    if not env.conda:
        return ""
    return f'"${{CONDA_EXE:-conda}}" run -n {shlex.quote(env.conda)} --no-capture-output '


def wrapper_script(action: Launch, env: EnvActivation, project: str) -> str:
    """``wrapper.sh``: lock, record pid/start time/host (and ``oom_watch``: ``OOM_WATCH``), heartbeat,
    run the job (its shell's pid in ``job_pid``), record its exit code.

    It runs as ``setsid nohup sh wrapper.sh``, so its pid is its process group and session id:
    killing ``-pid`` stops the job with every child. It writes its own ``$$`` (never ``$!``).
    On SIGTERM (a kill of the group) the job dies with 143 and the wrapper still records it; a
    SIGTERM that arrives after the pid is recorded but before the job starts is recorded as 143
    too, and the job never starts (the signal is trapped from the wrapper's first step on).
    """
    _check(action)
    q = shlex.quote
    job = "\n".join("  " + line for line in job_lines(action, env, project))
    lease_bind = lease_release = ""
    if action.lease is not None:  # the GPU lease follows this process, and ends with the run
        lease, pid_file = (root_expr(p) for p in action.lease.paths())
        bound = f'printf \'%s %s\\n\' "$$" "$(cat start_time)" > {pid_file}.$$'
        lease_bind = f"{bound} && mv -f {pid_file}.$$ {pid_file}\n"
        lease_release = f"rm -f {lease} {pid_file}\n"
    return f"""#!/bin/sh
# reconciler run wrapper: {action.exp_id} attempt {action.attempt} (generated, do not edit)
cd {q(action.run_dir)} || exit 111
mkdir launch.lock 2>/dev/null || exit 0
trap 'term=1' TERM INT
echo $$ > pid.tmp && mv -f pid.tmp pid
( {START_TIME} ) > start_time.tmp && mv -f start_time.tmp start_time
{lease_bind}uname -n > host.tmp && mv -f host.tmp host
( {OOM_WATCH} ) 2>/dev/null
date +%s > heartbeat
(
  trap 'kill "$s" 2>/dev/null; exit 0' TERM
  while :; do
    date +%s > heartbeat.tmp && mv -f heartbeat.tmp heartbeat
    sleep {HEARTBEAT_SECONDS} & s=$!
    wait "$s"
  done
) </dev/null >/dev/null 2>&1 &
hb=$!
trap ': job signalled, record its exit code' TERM INT
if [ -n "$term" ]; then
  rc=143
else
(
  sh -c 'echo $PPID' > job_pid 2>/dev/null
{job}
) </dev/null > stdout.log 2>&1
rc=$?
fi
kill "$hb" 2>/dev/null
echo "$rc" > exit_code.tmp && mv -f exit_code.tmp exit_code
{lease_release}"""


def launch_record(action: Launch) -> str:
    """``launch.json``: what this launch chose, one JSON line (the probe reports it, so a pass that
    adopts the run after a crash knows its GPUs, command and commit)."""
    doc = {
        "v": 1,
        "exp_id": action.exp_id,
        "attempt": action.attempt,
        "gpus": list(action.gpus),
        "command": action.command,
        "commit": action.commit,
        "vram_gb": action.vram_gb,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def prepare_script(action: Launch, size: int, take_lease: str | None = None) -> str:
    """First launch command: run dir, token claim, ``launch.json``, ``wrapper.sh`` (``size`` bytes
    from stdin) and ``result_path``.

    The token is claimed with ``ln`` (atomic: exactly one of two racing launchers creates it),
    only in a run dir that is new (empty, or holding only a killed claim's ``.token.*``): a run
    dir made by someone else before our launch (``exit_code``, ``pid``, no token) is refused like
    a foreign or empty token, never claimed.
    Once ``launch.lock`` exists the wrapper on disk is what ran, so it is left untouched.
    Prints ``ready`` or ``launched``; exits ``FOREIGN_TOKEN_EXIT`` on a foreign token.
    ``take_lease`` (``scripts.lease_command``) runs first: a refused GPU lease creates nothing.
    """
    _check(action)
    q = shlex.quote
    token = q(action.token)
    log_target = f"../runs/{action.exp_id}/{action.attempt}/stdout.log"
    return f"""{take_lease or ""}mkdir -p {q(action.run_dir)} && cd {q(action.run_dir)} || exit 1
if [ ! -f token ]; then
  other=$(ls -A | grep -v -e '^\\.token\\.' -e '^token$' | head -n 5 | tr '\\n' ' ')
  if [ -n "$other" ] && [ ! -f token ]; then
    echo "run dir has no token but holds: $other" >&2; exit {FOREIGN_TOKEN_EXIT}
  fi
  printf '%s\\n' {token} > .token.$$ && ln .token.$$ token 2>/dev/null; rm -f .token.$$
fi
t=$(cat token 2>/dev/null)
if [ "$t" != {token} ]; then echo "run dir holds token '$t'" >&2; exit {FOREIGN_TOKEN_EXIT}; fi
if [ -d launch.lock ]; then cat >/dev/null; echo launched; exit 0; fi
printf '%s\\n' {q(launch_record(action))} > .launch.json.$$ && mv -f .launch.json.$$ launch.json || exit 1
{receive_stdin("wrapper.sh", size)}
printf '%s\\n' {q(result_path(action))} > .result_path.$$ && mv -f .result_path.$$ result_path || exit 1
mkdir -p ../../../logs && ln -sfn {q(log_target)} {q(f"../../../logs/{log_name(action)}")} 2>/dev/null
echo ready
"""


def log_name(action: Launch) -> str:
    """The seed's log names, in ``<root>/logs/``: ``<EXP_ID>.log``, then ``<EXP_ID>_r2.log``, …
    (symlinks to ``runs/<EXP_ID>/<attempt>/stdout.log``)."""
    return f"{action.exp_id}.log" if action.attempt == 1 else f"{action.exp_id}_r{action.attempt}.log"


def start_script(run_dir: str, wait_seconds: float = 5.0) -> str:
    """Second launch command: start the wrapper detached, wait for its pid, print what it recorded.

    Output: ``pid=``, ``start_time=``, ``host=`` and ``started=`` (1 when this command started it)
    lines. The job survives this command, the transport and the reconciler: it has its own
    session, ignores SIGHUP and holds none of the caller's streams.
    """
    q = shlex.quote
    rounds = max(1, round(wait_seconds / 0.1))
    return f"""cd {q(run_dir)} || exit 1
started=0
if [ ! -d launch.lock ]; then
  setsid nohup sh wrapper.sh >/dev/null 2>&1 </dev/null &
  started=1
fi
i=0
while [ $i -lt {rounds} ]; do
  [ -s pid ] && [ -s start_time ] && break
  sleep 0.1; i=$((i + 1))
done
printf 'pid=%s\\nstart_time=%s\\nhost=%s\\nstarted=%s\\n' \\
  "$(cat pid 2>/dev/null)" "$(cat start_time 2>/dev/null)" "$(uname -n)" "$started"
"""


def parse_key_values(text: str) -> dict[str, str]:
    """``key=value`` lines (later lines win; other lines are ignored)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isidentifier():
            out[key] = value.strip()
    return out
