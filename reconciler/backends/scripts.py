"""Pure builders for the other remote commands of a pass: probe, ship code, kill.

Each function returns the text of one ``sh -c`` script (POSIX sh: dash, bash, busybox ash);
``ShellRunner`` sends it through whichever transport the target uses. All quoting goes through
``shlex.quote``; paths on the target are built with ``posixpath``.
"""

from __future__ import annotations

import re
import shlex

from reconciler.errors import InvalidTarget

PROBE_MISSING_EXIT = 97
"""The probe command exits with this when the probe script is not installed yet."""

_USER = re.compile(r"[A-Za-z0-9._-]+\Z")
_COMMIT = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]*\Z")


def root_expr(root: str) -> str:
    """A shell word that expands to the absolute root on the target.

    ``~``, ``~/x`` and relative paths are relative to ``$HOME`` there (the probe resolves them the
    same way); ``~user/x`` is left to the shell's tilde expansion.
    """
    if not root:
        raise InvalidTarget("the target's root is empty", "InvalidTarget")
    if root.startswith("/"):
        return shlex.quote(root)
    head, sep, rest = root.partition("/")
    if head == "~":
        return '"$HOME"' + (sep + shlex.quote(rest) if rest else "")
    if head.startswith("~"):
        if not _USER.match(head[1:]):
            raise InvalidTarget(f"cannot expand {head!r} in root {root!r}", "InvalidTarget")
        return head + (sep + shlex.quote(rest) if rest else "")
    return '"$HOME"/' + shlex.quote(root)


def python_words(python: str) -> str:
    """The target's interpreter command (``python3``, ``/opt/py/bin/python3 -I``), quoted word by word."""
    words = shlex.split(python) or ["python3"]
    return " ".join(shlex.quote(w) for w in words)


def probe_command(root: str, script_name: str, python: str, install_from: str | None = None) -> str:
    """Run the installed probe (stdin: the request); exit ``PROBE_MISSING_EXIT`` when it is absent.

    When absent it also creates ``<root>/.reconciler`` and prints that dir, so the caller can
    ``put`` the script there. ``install_from`` (a temp file already put in that dir) is first
    renamed into place: the second command of a first pass installs and probes at once.
    """
    lines = [f"R={root_expr(root)}", f'd="$R"/.reconciler; f="$d"/{shlex.quote(script_name)}']
    if install_from is not None:
        lines.append(f'mv -f "$d"/{shlex.quote(install_from)} "$f" || exit 1')
    lines.append(
        f'if [ ! -f "$f" ]; then cat >/dev/null; mkdir -p "$d" || exit 1; printf \'%s\\n\' "$d"; '
        f"exit {PROBE_MISSING_EXIT}; fi"
    )
    # -S: no site module. The probe needs the standard library only, and site's .pth files
    # (conda, pyenv and certifi hooks) can cost more than the probe itself, once per pass.
    lines.append(f'exec {python_words(python)} -S "$f"')
    return "\n".join(lines) + "\n"


LEASE_REFUSED_EXIT = 96
"""The lease command's exit status when the GPU lease is refused (``model.leases``)."""


def lease_command(root: str, script_name: str, python: str, request: str) -> str:
    """Take a GPU lease with the installed probe (``--take-lease``); exit ``PROBE_MISSING_EXIT``
    when the probe is absent, ``LEASE_REFUSED_EXIT`` when the lease is refused."""
    return (
        f'R={root_expr(root)}; f="$R"/.reconciler/{shlex.quote(script_name)}\n'
        f'[ -f "$f" ] || {{ cat >/dev/null; exit {PROBE_MISSING_EXIT}; }}\n'
        f'{python_words(python)} -S "$f" --take-lease {shlex.quote(request)} >/dev/null'
        " || { rc=$?; cat >/dev/null; exit $rc; }\n"
    )


def inline_probe_command(source: str, python: str) -> str:
    """Run the probe given as text on the command line (stdin stays the request): a read-only
    pass (``reconcile plan``) writes nothing on the target, not even the probe's install."""
    return f"exec {python_words(python)} -S -c {shlex.quote(source)}\n"


def receive_stdin(dest: str, size: int) -> str:
    """Shell lines that write stdin to ``dest`` (in the current dir) only when all ``size`` bytes
    arrived, else exit 1: a controller that dies mid-stream closes stdin early, and ``cat`` takes
    the cut text for the whole (an empty ``job.sh`` was submitted that way)."""
    tmp = f".{dest}.$$"
    return (
        f'cat > {tmp} && [ "$(wc -c < {tmp})" -eq {int(size)} ] && mv -f {tmp} {shlex.quote(dest)} '
        f'|| {{ rm -f {tmp}; echo "{dest}: incomplete input (expected {int(size)} bytes)" >&2; exit 1; }}'
    )


def check_commit(commit: str) -> str:
    if not _COMMIT.match(commit):
        raise InvalidTarget(f"commit {commit!r} is not a valid directory name", "InvalidSpec")
    return commit


def ship_check_script(root: str, commit: str) -> str:
    """Print ``present`` when ``<root>/code/<commit>/.complete`` exists, else create ``<root>/code``
    and print ``absent`` and then its absolute path."""
    c = shlex.quote(check_commit(commit))
    return f"""R={root_expr(root)}
if [ -f "$R"/code/{c}/.complete ]; then echo present; exit 0; fi
mkdir -p "$R"/code || exit 1
echo absent; printf '%s\\n' "$R"/code
"""


def ship_unpack_script(code_root: str, commit: str, archive_name: str, python: str) -> str:
    """Unpack the archive put at ``<code_root>/<archive_name>`` into ``<code_root>/<commit>``.

    It unpacks into a private temp dir, writes ``.complete`` there, and renames the dir into place
    with rename(2) through the target's Python (atomic, and it fails instead of nesting when a
    concurrent ship got there first: that one's copy is kept). A stale dir without ``.complete``
    is moved aside first. The tar is removed in every case.
    """
    q = shlex.quote
    c = q(check_commit(commit))
    a = q(archive_name)
    rename = "import os,sys\ntry:\n os.rename(sys.argv[1], sys.argv[2])\nexcept OSError:\n sys.exit(3)"
    return f"""cd {q(code_root)} || exit 1
trap 'rm -rf "$tmp" "$stale"; rm -f {a}' EXIT
tmp=.{c}.tmp.$$; stale=.{c}.stale.$$
if [ -f {c}/.complete ]; then echo present; exit 0; fi
mkdir "$tmp" && tar -xf {a} -C "$tmp" || {{ echo "cannot unpack {archive_name}" >&2; exit 1; }}
: > "$tmp"/.complete
if [ -e {c} ] && [ ! -f {c}/.complete ]; then mv {c} "$stale" 2>/dev/null; fi
{python_words(python)} -c {q(rename)} "$tmp" {c}
if [ -f {c}/.complete ]; then echo shipped; exit 0; fi
echo "{commit} did not land in $(pwd)" >&2; exit 1
"""


_STAT = """st() {
  if [ -d /proc/self ]; then
    [ -r /proc/$1/stat ] && sed 's/.*) //' /proc/$1/stat | cut -d' ' -f1,20
  else
    ps -o stat= -o lstart= -p $1 2>/dev/null | sed 's/^ *//' | sed 's/^\\([^ ]*\\)  */\\1 /'
  fi
}"""
"""``st PID``: its state letter and start time (``/proc/<pid>/stat`` fields 3 and 22, or ``ps``)."""


def kill_tree_script(pid: int | None, start_time: str | None, grace_seconds: float) -> str:
    """Stop a process that leads no process group of ours (a run the seed started) and every
    descendant of it, only while its start time is ``start_time``; prints one word, as
    ``kill_script`` does (``gone``, ``reused``, ``alive``, ``unknown``: no pid or start time seen)."""
    q = shlex.quote
    rounds = max(1, round(grace_seconds / 0.1))
    return f"""pid={q("" if pid is None else str(pid))}; want={q(start_time or "")}
case "$pid" in ''|*[!0-9]*) echo unknown; exit 0 ;; esac
[ -n "$want" ] || {{ echo unknown; exit 0; }}
{_STAT}
tree() {{
  ps -A -o pid= -o ppid= -o stat= 2>/dev/null | awk -v root="$1" '
    $3 !~ /^Z/ {{ parent[$1] = $2; live[$1] = 1 }}
    END {{
      if (!(root in live)) exit
      keep[root] = 1; grew = 1
      while (grew) {{
        grew = 0
        for (p in parent) if (!(p in keep) && (parent[p] in keep)) {{ keep[p] = 1; grew = 1 }}
      }}
      for (p in keep) print p
    }}'
}}
any() {{ for p in $procs; do case "$(st "$p")" in ''|Z*) ;; *) return 0 ;; esac; done; return 1; }}
cur=$(st "$pid")
case "$cur" in ''|Z*) echo gone; exit 0 ;; esac
[ "${{cur#* }}" = "$want" ] || {{ echo reused; exit 0; }}
procs=$(tree "$pid")
kill -TERM $procs 2>/dev/null
i=0; while any && [ $i -lt {rounds} ]; do sleep 0.1; i=$((i + 1)); done
if any; then
  kill -KILL $procs 2>/dev/null
  i=0; while any && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
fi
if any; then echo alive; else echo gone; fi
"""


def kill_script(run_dir: str, pid: int | None, start_time: str | None, grace_seconds: float) -> str:
    """Stop a run's process group, then verify; prints one word.

    ``gone`` (nothing of ours runs any more, including after a kill), ``reused`` (the pid now
    belongs to another process: ours is gone and that one is not touched), ``alive`` (still there
    after SIGKILL), ``unknown`` (launched but no pid recorded yet, or an orphaned group whose
    members cannot be shown to be ours). Zombies count as gone.

    With no pid given, the pid and start time the wrapper recorded in the run dir are used.
    When the recorded process is gone but its group still has members (children that outlived
    the wrapper), the group is killed only if one member carries this run's
    ``RECONCILER_RUN_DIR`` in its environment.
    """
    q = shlex.quote
    rounds = max(1, round(grace_seconds / 0.1))
    return f"""d={q(run_dir)}; pid={q("" if pid is None else str(pid))}; want={q(start_time or "")}
if [ -z "$pid" ]; then
  pid=$(cat "$d"/pid 2>/dev/null); want=$(cat "$d"/start_time 2>/dev/null)
  if [ -z "$pid" ]; then if [ -d "$d"/launch.lock ]; then echo unknown; else echo gone; fi; exit 0; fi
fi
case "$pid" in *[!0-9]*) echo "bad pid $pid" >&2; exit 2 ;; esac
st() {{
  if [ -d /proc/self ]; then
    [ -r /proc/$1/stat ] && sed 's/.*) //' /proc/$1/stat | cut -d' ' -f1,20
  else
    ps -o stat= -o lstart= -p $1 2>/dev/null | sed 's/^ *//' | sed 's/^\\([^ ]*\\)  */\\1 /'
  fi
}}
live() {{
  ps -A -o pgid= -o stat= 2>/dev/null | awk -v g="$1" '$1 == g && $2 !~ /^Z/ {{ n++ }} END {{ print n + 0 }}'
}}
members() {{ ps -A -o pid= -o pgid= 2>/dev/null | awk -v g="$1" '$2 == g {{ print $1 }}'; }}
cur=$(st "$pid")
if [ -n "$cur" ]; then
  [ "${{cur#* }}" = "$want" ] || {{ echo reused; exit 0; }}
else
  [ "$(live "$pid")" -gt 0 ] || {{ echo gone; exit 0; }}
  ours=0
  for m in $(members "$pid"); do
    tr '\\0' '\\n' < /proc/$m/environ 2>/dev/null | grep -qxF "RECONCILER_RUN_DIR=$d" && ours=1
  done
  [ "$ours" = 1 ] || {{ echo unknown; exit 0; }}
fi
kill -TERM -"$pid" 2>/dev/null
i=0; while [ "$(live "$pid")" -gt 0 ] && [ $i -lt {rounds} ]; do sleep 0.1; i=$((i + 1)); done
if [ "$(live "$pid")" -gt 0 ]; then
  kill -KILL -"$pid" 2>/dev/null
  i=0; while [ "$(live "$pid")" -gt 0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
fi
if [ "$(live "$pid")" -gt 0 ]; then echo alive; else echo gone; fi
"""
