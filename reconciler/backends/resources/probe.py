# Python 3.6 compatible on purpose: typing generics and no newer syntax or subprocess options.
# ruff: noqa: UP006, UP021, UP022, UP035, UP045, PTH
"""The probe that runs ON THE TARGET, once per pass (observe stage).

``ShellRunner.probe`` installs this file as ``<root>/.reconciler/probe-<hash>.py`` and runs it with
one JSON request on stdin::

    {"root": "~/proj", "want": [["A_s0", 1]], "tail": 20, "smi": [[argv...], [argv...]],
     "fatal": {"markers": ["out of memory", ...], "words": ["nan", "inf"]}}

and it prints one JSON document on one line (format in ``reconciler.backends.probe``).

Constraints: Python >= 3.6, standard library only, no third-party import, read-only except for
nothing at all (it never writes). Keep the output small: every run dir gets a compact record
(a list), only live or wanted runs get the details. It runs every pass on every target (with
``python -S``): ``subprocess`` and ``shutil`` are imported only where a GPU tool or ``ps`` is run.
"""

import contextlib
import json
import os
import stat
import sys
import time
from typing import Any, Dict, List, Optional, Set, Tuple

VERSION = 1
FIELDS = ["exp_id", "attempt", "token", "launched", "exit_code", "pid", "start_time", "age", "job_id"]
TAIL_BYTES = 65536
MAX_LINE = 400
SIDECAR_MAX = 262144
LAUNCH_MAX = 65536
WRAPPER_MAX = 262144
CUDA_EXPORT = "export CUDA_VISIBLE_DEVICES="
SMI_TIMEOUT = 30
HAVE_PROC = os.path.isdir("/proc/self")


def resolve_root(root: str) -> str:
    """``~`` and relative roots are relative to $HOME (the shell side does the same)."""
    home = os.path.expanduser("~")
    return os.path.normpath(os.path.join(home, os.path.expanduser(root)))


def read_text(path: str, limit: int = 4096) -> Optional[str]:
    """Up to ``limit`` bytes of a system file (a cgroup counter), as text."""
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace").strip()
    except OSError:
        return None


def open_owned(path: str) -> Optional[int]:
    """A descriptor of ``path`` when it is a regular file this user owns, opened without following
    a symlink (a job may replace its run dir's files with links to ``/etc/shadow`` or
    ``/dev/zero``); None otherwise. Every file of a run dir is read through this."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid():
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def read_fd(fd: int, limit: int) -> bytes:
    """At most ``limit`` bytes from ``fd``."""
    chunks = []  # type: List[bytes]
    size = 0
    while size < limit:
        chunk = os.read(fd, min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def read_owned(path: str, limit: int = 4096) -> Optional[str]:
    """Up to ``limit`` bytes of a run dir's file (``open_owned``), as text; None when refused."""
    fd = open_owned(path)
    if fd is None:
        return None
    try:
        return read_fd(fd, limit).decode("utf-8", "replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)


def read_int(path: str) -> Optional[int]:
    text = read_owned(path)
    try:
        return int(text) if text else None
    except ValueError:
        return None


def process_state(pid: int) -> Optional[Tuple[str, str, int]]:
    """(state letter, start time, process group) of ``pid``, or None when there is no such process.

    On Linux the start time is field 22 of /proc/<pid>/stat (clock ticks since boot), read after
    the last ')' so that a command name holding spaces or parentheses cannot shift the fields.
    Elsewhere it is ``ps -o lstart=``, the same source the wrapper used when it recorded it.
    """
    if HAVE_PROC:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
        except OSError:
            return None
        rest = data[data.rfind(b")") + 2 :].split()
        if len(rest) < 20:
            return None
        return rest[0].decode(), rest[19].decode(), int(rest[2])
    import subprocess

    try:
        out = subprocess.run(
            ["ps", "-o", "stat=", "-o", "pgid=", "-o", "lstart=", "-p", str(pid)],
            check=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            universal_newlines=True,
            timeout=10,
        ).stdout.split(None, 2)
    except (OSError, subprocess.SubprocessError):
        return None
    if len(out) < 3:
        return None
    return out[0][:1], out[2].strip(), int(out[1])


def is_alive(pid: Optional[int], start_time: Optional[str]) -> bool:
    """Running, not a zombie, and started when the wrapper said: a reused pid never looks alive."""
    if pid is None or not start_time:
        return False
    state = process_state(pid)
    return state is not None and state[0] not in ("Z", "X", "x") and state[1] == start_time


def process_groups() -> Dict[int, List[Tuple[int, str]]]:
    """Live (not zombie) processes by process group: pgid -> [(pid, start time)], read once per
    probe and only when a run's leader is gone (``group_left``)."""
    groups = {}  # type: Dict[int, List[Tuple[int, str]]]
    if HAVE_PROC:
        for name in os.listdir("/proc"):
            if name.isdigit():
                state = process_state(int(name))
                if state is not None and state[0] not in ("Z", "X", "x"):
                    groups.setdefault(state[2], []).append((int(name), state[1]))
        return groups
    import subprocess

    try:
        out = subprocess.run(
            ["ps", "-A", "-o", "pid=", "-o", "pgid=", "-o", "stat="],
            check=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            universal_newlines=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return groups
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0].isdigit() and words[1].isdigit() and words[2][:1] not in ("Z", "X"):
            groups.setdefault(int(words[1]), []).append((int(words[0]), ""))
    return groups


def group_left(pid: int, start_time: str, groups: Dict[int, List[Tuple[int, str]]]) -> List[int]:
    """Live processes of the run's process group (its pgid is the wrapper's pid: ``setsid``).

    A pid is not reused while a group of that id has members, so when the leader's pid belongs
    to a process with another start time, the group is someone else's: nothing of ours is left.
    Members must have started no earlier than the leader (clock ticks on Linux)."""
    leader = process_state(pid)
    if leader is not None and leader[1] != start_time:
        return []
    out = []
    for member, started in groups.get(pid, ()):
        if started.isdigit() and start_time.isdigit() and int(started) < int(start_time):
            continue
        out.append(member)
    return sorted(out)


OOM_WATCH = "oom_watch"
"""Written by the wrapper at start: the path of its memory cgroup's event counter file
(``memory.events`` on cgroup v2, ``memory.oom_control`` on v1) and its ``oom_kill`` count then."""
KERNEL_LOG_MAX = 4 * 1024 * 1024


def oom_kill_count(path: str) -> Optional[int]:
    """The ``oom_kill`` counter of a cgroup's ``memory.events`` (or v1 ``memory.oom_control``)."""
    text = read_text(path, 65536)
    for line in (text or "").splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "oom_kill" and words[1].isdigit():
            return int(words[1])
    return None


def cgroup_oom_evidence(run_dir: str) -> List[str]:
    """One line when the job's memory cgroup counted an OOM kill since the wrapper started."""
    watch = (read_owned(os.path.join(run_dir, OOM_WATCH)) or "").splitlines()
    if len(watch) < 2 or not watch[1].strip().isdigit():
        return []
    path, before = watch[0].strip(), int(watch[1].strip())
    now = oom_kill_count(path)
    if now is None or now <= before:
        return []
    return [f"cgroup {path}: oom_kill {before} -> {now} since the run started"]


def kernel_log() -> List[str]:
    """The kernel's log where this user may read it (``/dev/kmsg``, ``dmesg``, ``journalctl -k``);
    empty when none is readable (``dmesg_restrict``, no journal group)."""
    lines = []  # type: List[str]
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        fd = -1
    if fd >= 0:
        size = 0
        try:
            while size < KERNEL_LOG_MAX:
                try:
                    record = os.read(fd, 8192)
                except BlockingIOError:
                    break
                except OSError:  # EPIPE: a record was overwritten while reading; go on
                    continue
                if not record:
                    break
                size += len(record)
                lines.append(record.decode("utf-8", "replace").split(";", 1)[-1].rstrip("\n"))
        finally:
            os.close(fd)
        if lines:
            return lines
    for argv in (["dmesg"], ["journalctl", "-k", "-q", "--no-pager", "-o", "cat", "-n", "20000"]):
        out = run_tool(argv)
        text = str(out["out"])
        if out["rc"] == 0 and text:
            return text[-KERNEL_LOG_MAX:].splitlines()
    return []


def kernel_oom_lines(log: List[str], pids: Set[int]) -> List[str]:
    """The OOM killer's lines naming one of ``pids``."""
    found = []
    for line in log:
        if "Killed process" not in line and "oom-kill" not in line:
            continue
        for word in line.replace(",", " ").replace("=", " ").split():
            if word.isdigit() and int(word) in pids and (f"pid={word}" in line or f"process {word}" in line):
                found.append(line.strip()[-MAX_LINE:])
                break
    return found[-5:]


def oom_evidence(run_dir: str, pid: Optional[int], kernel: List[str]) -> List[str]:
    """Evidence that the kernel's OOM killer ended the run: the cgroup's counter, then the
    kernel log's lines naming the wrapper's or the job's pid (``job_pid``, written by the wrapper)."""
    evidence = cgroup_oom_evidence(run_dir)
    pids = {p for p in (pid, read_int(os.path.join(run_dir, "job_pid"))) if p is not None}
    return evidence + kernel_oom_lines(kernel, pids)


def tail_lines(path: str, count: int) -> List[str]:
    fd = open_owned(path)
    if fd is None:
        return []
    try:
        size = os.fstat(fd).st_size
        os.lseek(fd, max(0, size - TAIL_BYTES), os.SEEK_SET)
        data = read_fd(fd, TAIL_BYTES)
    except OSError:
        return []
    finally:
        os.close(fd)
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    lines = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return [line[-MAX_LINE:] for line in lines[-count:]] if count > 0 else []


def may_be_fatal(lines: List[str], fatal: Dict[str, List[str]]) -> bool:
    """The lowercased text holds a fatal marker, or a fatal word ending a word (the controller's
    ``plan.failure._may_be_fatal``, with the markers from the request)."""
    text = "\n".join(lines).lower()
    if any(marker in text for marker in fatal.get("markers", ())):
        return True
    for word in fatal.get("words", ()):
        at = text.find(word) if word else -1
        while at >= 0:
            end = at + len(word)
            if end == len(text) or not (text[end].isalnum() or text[end] == "_"):
                return True
            at = text.find(word, end)
    return False


def mtime_age(path: str, now: float, digits: int = 1) -> Optional[float]:
    try:
        age = max(0.0, now - os.stat(path).st_mtime)
        return round(age, digits) if digits else int(age)
    except OSError:
        return None


def read_sidecar(path: str) -> Optional[Dict[str, Any]]:
    data = read_regular(path, SIDECAR_MAX)
    try:
        doc = json.loads(data.decode("utf-8")) if data is not None else None
        json.dumps(doc)  # nested too deeply to be written back: left out, not the whole answer
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def read_regular(path: str, limit: int) -> Optional[bytes]:
    """The bytes of a regular file of ours no larger than ``limit`` (``open_owned``), else None."""
    fd = open_owned(path)
    if fd is None:
        return None
    try:
        if os.fstat(fd).st_size > limit:
            return None
        data = read_fd(fd, limit + 1)
        return data if len(data) <= limit else None
    except OSError:
        return None
    finally:
        os.close(fd)


def launch_record(run_dir: str, names: Set[str]) -> Optional[Dict[str, Any]]:
    """What the launch chose for this run: ``launch.json`` (written before the process started),
    or, in a run dir of an older version, the last ``CUDA_VISIBLE_DEVICES`` the wrapper exports
    (``{"cuda_env": <the shell word>}``). None when neither is there."""
    if "launch.json" in names:
        data = read_regular(os.path.join(run_dir, "launch.json"), LAUNCH_MAX)
        try:
            doc = json.loads(data.decode("utf-8")) if data is not None else None
        except ValueError:
            doc = None
        return doc if isinstance(doc, dict) else None
    if "wrapper.sh" not in names:
        return None
    data = read_regular(os.path.join(run_dir, "wrapper.sh"), WRAPPER_MAX)
    if data is None:
        return None
    found = None
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if line.startswith(CUDA_EXPORT):
            found = line[len(CUDA_EXPORT) :]
    return {"cuda_env": found} if found is not None else None


def result_size(run_dir: str) -> Optional[int]:
    """The size of the run's result file, when it is a regular file of ours."""
    path = read_owned(os.path.join(run_dir, "result_path"))
    return owned_size(path) if path else None


def scan_runs(
    root: str, want: Set[Tuple[str, int]], tail: int, now: float, fatal: Optional[Dict[str, List[str]]] = None
) -> Dict[str, Any]:
    """Compact records of every run dir; details for unfinished or wanted ones. With ``fatal``, a
    live process with no exit code and no batch job sends its log tail only when it may hold a
    fatal line: that is all the controller reads it for."""
    records = []  # type: List[List[Any]]
    details = []  # type: List[Dict[str, Any]]
    errors = []  # type: List[str]
    alive_pids = []  # type: List[int]
    groups = None  # type: Optional[Dict[int, List[Tuple[int, str]]]]
    kernel = None  # type: Optional[List[str]]
    runs_dir = os.path.join(root, "runs")
    try:
        exp_ids = sorted(e.name for e in os.scandir(runs_dir) if e.is_dir(follow_symlinks=False) and e.name[:1] != ".")
    except OSError:
        exp_ids = []
    for exp_id in exp_ids:
        exp_dir = os.path.join(runs_dir, exp_id)
        try:
            attempts = sorted(
                int(e.name) for e in os.scandir(exp_dir) if e.name.isdigit() and e.is_dir(follow_symlinks=False)
            )
        except OSError as exc:
            errors.append(f"{exp_dir}: {exc}")
            continue
        for attempt in attempts:
            run_dir = os.path.join(exp_dir, str(attempt))
            try:
                names = {e.name for e in os.scandir(run_dir)}
            except OSError as exc:
                errors.append(f"{run_dir}: {exc}")
                continue
            token = read_owned(os.path.join(run_dir, "token")) if "token" in names else None
            exit_code = read_int(os.path.join(run_dir, "exit_code")) if "exit_code" in names else None
            age = mtime_age(os.path.join(run_dir, "token") if token is not None else run_dir, now, 0)
            pid = None  # type: Optional[int]
            start = None  # type: Optional[str]
            detailed = exit_code is None or (exp_id, attempt) in want
            if detailed:
                pid = read_int(os.path.join(run_dir, "pid")) if "pid" in names else None
                start = read_owned(os.path.join(run_dir, "start_time")) if "start_time" in names else None
            job_id = read_owned(os.path.join(run_dir, "job_id"), 256) if "job_id" in names else None
            if job_id is None and "submit.out" in names:  # submitted, id not recorded: a batch
                job_id = "submit:" + (read_owned(os.path.join(run_dir, "submit.out"), 512) or "")
            records.append([exp_id, attempt, token, int("launch.lock" in names), exit_code, pid, start, age, job_id])
            if not detailed:
                continue
            alive = is_alive(pid, start)
            if alive and pid is not None:
                alive_pids.append(pid)
            lines = tail_lines(os.path.join(run_dir, "stdout.log"), tail)
            if alive and exit_code is None and job_id is None and fatal is not None and not may_be_fatal(lines, fatal):
                lines = []
            detail = {
                "exp_id": exp_id,
                "attempt": attempt,
                "alive": alive,
                "heartbeat_age": mtime_age(os.path.join(run_dir, "heartbeat"), now),
                "result_size": result_size(run_dir),
                "sidecar": read_sidecar(os.path.join(run_dir, "status.json")),
                "log_tail": lines,
                "launch": launch_record(run_dir, names),
                "started_age": mtime_age(os.path.join(run_dir, "pid"), now) if "pid" in names else None,
            }  # type: Dict[str, Any]
            if pid is not None and start and (not alive or exit_code is not None):
                if groups is None:
                    groups = process_groups()
                detail["group"] = group_left(pid, start, groups)
            if exit_code in (137, -9):
                if kernel is None:
                    kernel = kernel_log()
                detail["oom"] = oom_evidence(run_dir, pid, kernel)
            details.append(detail)
    return {"runs": records, "details": details, "errors": errors[:20], "alive_pids": alive_pids}


SEED_TOKEN = "seed"
EXIT_MARK = "EXIT_CODE:"


def boot_time() -> Optional[float]:
    """The kernel's boot time (``btime`` of /proc/stat), for a process's start as a Unix time."""
    text = read_text("/proc/stat", 1 << 16) or ""
    for line in text.splitlines():
        if line.startswith("btime "):
            try:
                return float(line.split()[1])
            except (IndexError, ValueError):
                return None
    return None


def started_at(ticks: str, boot: Optional[float]) -> Optional[float]:
    """A ``/proc/<pid>/stat`` start time (clock ticks since boot) as a Unix time."""
    if boot is None or not ticks.isdigit():
        return None
    return boot + int(ticks) / float(os.sysconf("SC_CLK_TCK"))


def command_line(pid: int) -> bytes:
    if HAVE_PROC:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return f.read(1 << 16)
        except OSError:
            return b""
    import subprocess

    try:
        return subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)],
            check=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return b""


def mine(pid: int) -> bool:
    """The process runs as this user (a seed run is never looked for among other users')."""
    if not HAVE_PROC:
        return True
    try:
        return os.stat(f"/proc/{pid}").st_uid == os.getuid()
    except OSError:
        return False


def seed_process(
    exp_id: str,
    pid: Optional[int],
    start: Optional[str],
    started: Optional[float],
    window: List[float],
    boot: Optional[float],
) -> Tuple[bool, Optional[str], Optional[float]]:
    """(alive, start time, its start as a Unix time) of a seed run's recorded pid. With a start
    time seen before, only that start time matches. Else the process is the seed's when it runs
    as this user and its command line names the experiment (the seed's wrapper writes
    ``experiments/logs/<id>.log``) or it started within ``window`` of the seed's ``started``."""
    if pid is None:
        return False, start, None
    state = process_state(pid)
    if state is None or state[0] in ("Z", "X", "x") or not mine(pid):
        return False, start, None
    at = started_at(state[1], boot)
    if start:
        return state[1] == start, start, at
    named = exp_id.encode() in command_line(pid)
    timely = at is not None and started is not None and started - window[0] <= at <= started + window[1]
    if named or timely:
        return True, state[1], at
    return False, None, None


def exit_mark(path: str) -> Optional[int]:
    """The code of the last ``EXIT_CODE:<n>`` line of a seed run's exit log."""
    for line in reversed(tail_lines(path, 50)):
        text = line.strip()
        if text.startswith(EXIT_MARK):
            code = text[len(EXIT_MARK) :].strip()
            return int(code) if code.lstrip("-").isdigit() else None
    return None


def owned_size(path: str) -> Optional[int]:
    fd = open_owned(path)
    if fd is None:
        return None
    try:
        return os.fstat(fd).st_size
    except OSError:
        return None
    finally:
        os.close(fd)


def scan_seed(
    items: List[List[Any]], window: List[float], tail: int, now: float, fatal: Optional[Dict[str, List[str]]]
) -> Dict[str, Any]:
    """Records and details, as ``scan_runs`` makes them, of the runs the seed started (no run dir
    of ours holds them): ``[exp_id, attempt, pid, start_time, started, log, exit_log, result,
    job_id]`` each. The exit log counts only once the process is gone."""
    records = []  # type: List[List[Any]]
    details = []  # type: List[Dict[str, Any]]
    alive_pids = []  # type: List[int]
    boot = boot_time() if HAVE_PROC else None
    for item in items:
        exp_id, attempt, pid, start, started, log, exit_log, result, job_id = item
        pid = pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None
        alive, start, at = seed_process(str(exp_id), pid, start, started, window, boot)
        exit_code = None if alive else exit_mark(exit_log)
        if alive and pid is not None:
            alive_pids.append(pid)
        records.append([exp_id, attempt, SEED_TOKEN, 1, exit_code, pid, start, None, job_id])
        lines = tail_lines(log, tail)
        if alive and exit_code is None and job_id is None and fatal is not None and not may_be_fatal(lines, fatal):
            lines = []
        details.append(
            {
                "exp_id": exp_id,
                "attempt": attempt,
                "alive": alive,
                "heartbeat_age": None,
                "result_size": owned_size(result),
                "sidecar": None,
                "log_tail": lines,
                "launch": None,
                "started_age": round(now - at, 1) if alive and at is not None else None,
            }
        )
    return {"runs": records, "details": details, "alive_pids": alive_pids}


LEASE_MAX = 65536
LEASE_REFUSED_EXIT = 96


def read_lease_file(path: str, limit: int) -> Optional[str]:
    """A lease directory's small file as text, never through a link (any owner: the projects of
    several users share the directory)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return read_fd(fd, limit).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def lease_entries(directory: str, now: float, grace: float) -> Tuple[List[Dict[str, Any]], List[str]]:
    """(live leases, stems of dead ones) in ``directory``. A lease is live while the pid its run's
    wrapper wrote (``<stem>.pid``: pid and start time) runs with that start time, or, with no pid
    file yet, for ``grace`` seconds after it was written."""
    live = []  # type: List[Dict[str, Any]]
    dead = []  # type: List[str]
    try:
        names = sorted(e.name for e in os.scandir(directory) if e.name.endswith(".json") and e.name[:1] != ".")
    except OSError:
        return live, dead
    for name in names:
        stem = name[: -len(".json")]
        path = os.path.join(directory, name)
        text = read_lease_file(path, LEASE_MAX)
        try:
            doc = json.loads(text) if text is not None else None
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            continue
        words = (read_lease_file(os.path.join(directory, stem + ".pid"), 256) or "").split()
        pid = int(words[0]) if words and words[0].isdigit() else None
        start = words[1] if len(words) > 1 else None
        if pid is not None:
            alive = is_alive(pid, start)
        else:
            age = mtime_age(path, now)
            alive = age is not None and age < grace
        if not alive:
            dead.append(stem)
            continue
        doc["name"] = stem
        doc["pid"] = pid
        doc["start_time"] = start
        live.append(doc)
    return live, dead


def take_lease(request: Dict[str, Any]) -> int:
    """Take a GPU lease under the directory's lock (``reconciler.model.leases``): refused (exit
    ``LEASE_REFUSED_EXIT``, why on stderr) when a GPU would hold more than its memory or more than
    ``max_runs`` leased runs; else the lease file is written and ``leased`` printed."""
    import fcntl

    directory = resolve_root(str(request["dir"]))
    name = str(request["name"])
    try:
        os.makedirs(directory, exist_ok=True)
        if os.stat(directory).st_uid == os.getuid():
            os.chmod(directory, 0o1777)
        lock_path = os.path.join(directory, ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError:
            fd = os.open(lock_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        sys.stderr.write(f"lease directory {directory}: {exc}\n")
        return 1
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        live, dead = lease_entries(directory, time.time(), float(request.get("grace", 300.0)))
        for stem in dead:
            for suffix in (".json", ".pid"):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(directory, stem + suffix))
        mine = float(request["reserved_mb"])
        capacity = request.get("capacity_mb") or {}
        for gpu in request["gpus"]:
            others = [d for d in live if d["name"] != name and gpu in (d.get("gpus") or [])]
            held = sum(float(d.get("reserved_mb") or 0.0) for d in others)
            if len(others) + 1 > int(request["max_runs"]):
                sys.stderr.write(
                    f"GPU {gpu} holds {len(others)} leased runs (max_runs_per_gpu {request['max_runs']})\n"
                )
                return LEASE_REFUSED_EXIT
            total = capacity.get(str(gpu))
            if total is not None and held + mine > float(total):
                sys.stderr.write(
                    f"GPU {gpu}: {held:.0f} MiB leased by {len(others)} runs + {mine:.0f} MiB"
                    f" would exceed its {float(total):.0f} MiB\n"
                )
                return LEASE_REFUSED_EXIT
        doc = {
            "project": request["project"],
            "exp_id": request["exp_id"],
            "attempt": request["attempt"],
            "gpus": request["gpus"],
            "reserved_mb": mine,
            "host": os.uname()[1],
            "created": time.time(),
        }
        tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps(doc))
        os.chmod(tmp, 0o644)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, name + ".pid"))
        os.rename(tmp, os.path.join(directory, name + ".json"))
    finally:
        os.close(fd)
    sys.stdout.write("leased\n")
    return 0


def lease_section(request: Any, now: float) -> Tuple[List[Dict[str, Any]], List[int]]:
    """The live leases of the request's lease directory, and their pids (their runs' process
    groups, for the GPU attribution)."""
    if not isinstance(request, dict) or not request.get("dir"):
        return [], []
    live, _ = lease_entries(resolve_root(str(request["dir"])), now, float(request.get("grace", 300.0)))
    pids = [d["pid"] for d in live if isinstance(d.get("pid"), int)]
    return live[:1000], pids


def run_tool(argv: List[str]) -> Dict[str, Any]:
    import subprocess

    try:
        proc = subprocess.run(
            argv,
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            timeout=SMI_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return {"rc": 124, "out": "", "err": f"timed out after {SMI_TIMEOUT}s"}
    except OSError as exc:
        return {"rc": 127, "out": "", "err": str(exc)}
    return {"rc": proc.returncode, "out": proc.stdout, "err": proc.stderr[-2000:]}


def gpu_section(commands: List[List[str]], live_pids: Set[int]) -> Optional[Dict[str, Any]]:
    """Raw nvidia-smi output (parsed on the controller), None when nvidia-smi is not on PATH.

    ``own`` lists the GPU processes whose process group is one of this project's live runs, and
    ``groups`` the same as ``[pid, pgid]`` pairs (the memory of a run is its group's).
    """
    import shutil

    if len(commands) != 2 or shutil.which(commands[0][0]) is None:
        return None
    query = run_tool(commands[0])
    apps = run_tool(commands[1]) if query["rc"] == 0 else None
    own = []
    groups = []
    if apps is not None and apps["rc"] == 0:
        for line in apps["out"].splitlines():
            head = line.split(",", 1)[0].strip()
            if head.isdigit():
                state = process_state(int(head))
                if state is not None and state[2] in live_pids:
                    own.append(int(head))
                    groups.append([int(head), state[2]])
    return {"query": query, "apps": apps, "own": own, "groups": groups}


def free_gb(path: str) -> Optional[float]:
    while path and not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    try:
        st = os.statvfs(path)
        return round(st.f_bavail * st.f_frsize / 2.0**30, 2)
    except OSError:
        return None


def main() -> int:
    if sys.argv[1:2] == ["--take-lease"]:
        return take_lease(json.loads(sys.argv[2]))
    request = json.loads(sys.stdin.buffer.read().decode("utf-8") or "{}")
    root = resolve_root(str(request.get("root") or "."))
    want = {(str(e), int(n)) for e, n in request.get("want") or []}
    now = time.time()
    doc = {
        "v": VERSION,
        "host": os.uname()[1],
        "root": root,
        "free_disk_gb": free_gb(root),
        "fields": FIELDS,
    }  # type: Dict[str, Any]
    fatal = request.get("fatal")
    fatal = fatal if isinstance(fatal, dict) else None
    tail = int(request.get("tail", 20))
    scan = scan_runs(root, want, tail, now, fatal)
    alive_pids = set(scan.pop("alive_pids"))
    seed = request.get("seed")
    if isinstance(seed, list) and seed:
        seen = scan_seed(seed, request.get("seed_window") or [900.0, 3600.0], tail, now, fatal)
        alive_pids.update(seen["alive_pids"])
        scan["runs"].extend(seen["runs"])
        scan["details"].extend(seen["details"])
    doc.update(scan)
    leases, lease_pids = lease_section(request.get("leases"), now)
    if leases:
        doc["leases"] = leases
    alive_pids.update(lease_pids)
    doc["gpus"] = gpu_section(request.get("smi") or [], alive_pids)
    sys.stdout.write(json.dumps(doc, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
