"""A small PBS Pro stand-in for tests: a file-backed queue that really runs jobs (stdlib only).

No PBS can be installed here (test-infrastructure.md 4), so ``qsub``, ``qstat``, ``qdel``,
``qselect`` and ``qrls`` in this folder implement the subset ``reconciler.backends.pbs`` calls, and
print what PBS Pro prints (formats as in the recorded real outputs of ``tests/data/pbs/``):

- ``qsub [-N name] [-o path] [-j oe] [-q queue] [-P project] [-l res=value]... script`` (also read
  from the script's ``#PBS`` lines) prints ``<n>.pbs-test``;
- jobs go Q -> R -> F. A job runs detached (``setsid``) with ``PBS_JOBID``, ``PBS_JOBNAME``,
  ``PBS_O_WORKDIR``, ``PBS_QUEUE`` set, its output in ``-o`` (stderr joined with ``-j oe``); its
  walltime is enforced: killed, ``Exit_status`` -29 and ``job killed: walltime N exceeded limit W``;
- ``qstat [-x] -f [-F json] [ids]``: ``Unknown Job Id`` (exit 153) for ids it never had, and
  without ``-x`` ``Job has finished`` (exit 35) for finished jobs, as PBS Pro;
- ``qdel``: a running job gets SIGTERM and ends F with ``Exit_status`` 271; ``qselect -N name``.

State lives in ``$PBS_SHIM_DIR`` (``jobs.json`` under an ``fcntl`` lock). Jobs start when a shim
command runs after their queue delay ("tick"). ``$PBS_SHIM_DIR/control.json`` injects faults::

    {"queue_delay": 2, "hold": ["rc.*"], "node_fail": ["name*"], "node_fail_exit": -20,
     "preempt": ["name*"], "preempt_after": 0.5, "no_json": true, "qstat_fail": true}

``hold``: matching jobs are submitted held (H, ``Hold_Types`` u) until ``qrls``; ``node_fail``:
the job's node "fails" as it starts (F, ``Exit_status`` a JOB_EXEC code, default -20
JOB_EXEC_RERUN_MS_FAIL); ``preempt``: the running job is killed after ``preempt_after`` seconds
(F, ``Exit_status`` -12 JOB_EXEC_CHKP, comment ``Job preempted``: the shim's wording);
``no_json``: ``-F`` is an unknown option (PBS Pro before 19), so the adapter's text fallback runs;
``qstat_fail``: the server does not answer ``qstat`` (it starts no job either): ``qstat`` prints
``Connection refused`` and ``qstat: cannot connect to server <server> (errno=15010)`` on stderr,
nothing on stdout, and exits ``qstat_fail_exit`` (default 1). The wording follows OpenPBS's qstat
(``pbs_connect`` failing with ECONNREFUSED); it is not a recorded output. ``qsub_fail``: ``qsub``
prints that text on stderr, queues nothing and exits ``qsub_fail_exit`` (default 1), like the
server refusing a job (``qsub: would exceed queue workq's per-user limit of jobs in 'Q' state``,
``qsub: Unknown queue``).
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SERVER = "pbs-test"
VERSION = "22.05.11"
Job = dict[str, Any]
Db = dict[str, Any]


def shim_dir() -> Path:
    d = Path(os.environ["PBS_SHIM_DIR"])
    d.mkdir(parents=True, exist_ok=True)
    return d


def control() -> dict[str, Any]:
    try:
        data = json.loads((shim_dir() / "control.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@contextlib.contextmanager
def locked() -> Iterator[Db]:
    d = shim_dir()
    with open(d / "lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            db: Db = json.loads((d / "jobs.json").read_text())
        except (OSError, ValueError):
            db = {"next": 1, "jobs": {}}
        yield db
        tmp = d / f"jobs.json.{os.getpid()}"
        tmp.write_text(json.dumps(db))
        os.replace(tmp, d / "jobs.json")


def stamp(t: float) -> str:
    return time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(t))


def hms(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def seconds(walltime: str) -> int:
    parts = [int(p) for p in walltime.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    return parts[0] * 3600 + parts[1] * 60 + parts[2]


def matches(name: str, key: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in control().get(key, []))


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def finish(job: Job, exit_status: int | None, comment: str | None, substate: int = 92) -> None:
    now = time.time()
    job.update(state="F", substate=substate, exit_status=exit_status, mtime=now, obittime=now)
    if comment is not None:
        job["comment"] = comment


def ran_comment(job: Job) -> str:
    t = time.localtime(job["stime"])
    return f"Job run at {time.strftime('%a %b %d at %H:%M', t)} on ({SERVER}:ncpus={job['ncpus']}) and finished"


def tick(db: Db) -> None:
    """Start the queued jobs whose delay is over; notice runners that died without a word."""
    now = time.time()
    for job in db["jobs"].values():
        if job["state"] == "Q" and now >= job["start_after"]:
            job.update(state="R", substate=42, stime=now, mtime=now, run_count=job["run_count"] + 1)
            job["comment"] = ran_comment(job).removesuffix(" and finished")
            proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "_run", job["id"]],
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            job["runner"] = proc.pid
        elif job["state"] == "R" and job.get("runner") and not alive(job["runner"]) and now - job["stime"] > 5:
            finish(job, -20, None)  # the runner vanished: as if the node was lost


def run_job(job_id: str) -> None:
    """The detached runner of one job: runs the script, enforces walltime and preemption."""
    with locked() as db:
        job = dict(db["jobs"][job_id])
    if matches(job["name"], "node_fail"):
        with locked() as db:
            finish(db["jobs"][job_id], int(control().get("node_fail_exit", -20)), None)
        return
    env = dict(os.environ, PBS_JOBID=job_id, PBS_JOBNAME=job["name"], PBS_O_WORKDIR=job["workdir"])
    env.update(PBS_QUEUE=job["queue"], PBS_ENVIRONMENT="PBS_BATCH", PBS_O_HOST=SERVER)
    env.pop("PBS_SHIM_DIR", None)
    out = open(job["output"], "ab")  # noqa: SIM115 - handed to the child
    err = out if job["join"] == "oe" else open(job["error"], "ab")  # noqa: SIM115
    child = subprocess.Popen(
        ["/bin/sh", job["script"]],
        cwd=os.environ.get("HOME") or job["workdir"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=err,
        start_new_session=True,
    )
    with locked() as db:
        db["jobs"][job_id].update(pgid=child.pid, session_id=child.pid)
    limit = job["walltime"]
    preempt = float(control().get("preempt_after", 0.5)) if matches(job["name"], "preempt") else None
    deadline = time.monotonic() + (min(limit, preempt) if preempt is not None else limit)
    killed: str | None = None
    while child.poll() is None:
        if time.monotonic() >= deadline:
            killed = "preempt" if preempt is not None and preempt < limit else "walltime"
            kill_group(child.pid)
            child.wait()
            break
        time.sleep(0.05)
    elapsed = time.time() - job["stime"]
    if killed == "walltime":
        message = f"job killed: walltime {int(elapsed)} exceeded limit {limit}"
        out.write(f"=>> PBS: {message}\n".encode())
    out.close()
    if err is not out:
        err.close()
    rc = child.returncode
    with locked() as db:
        current = db["jobs"][job_id]
        current["walltime_used"] = elapsed
        if current["state"] == "F":  # qdel got there first
            return
        if killed == "walltime":
            finish(current, -29, message, substate=93)
        elif killed == "preempt":
            finish(current, -12, "Job preempted")
        else:
            finish(current, rc if rc >= 0 else 256 - rc, ran_comment(current))


def kill_group(pgid: int, grace: float = 2.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        end = time.monotonic() + grace
        while time.monotonic() < end:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


# ---- qsub -----------------------------------------------------------------------------------


def parse_qsub_args(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    opts: dict[str, Any] = {"l": []}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-N", "-o", "-e", "-j", "-q", "-P", "-l", "-W", "-A") and i + 1 < len(argv):
            key = arg[1]
            if key == "l":
                opts["l"] += argv[i + 1].split(",")
            else:
                opts[key] = argv[i + 1]
            i += 2
        else:
            rest.append(arg)
            i += 1
    return opts, rest


def directives(script: str) -> list[str]:
    """Arguments of the script's ``#PBS`` lines, up to its first command (as qsub reads them)."""
    args: list[str] = []
    for line in script.splitlines()[1:] if script.startswith("#!") else script.splitlines():
        stripped = line.strip()
        if stripped.startswith("#PBS"):
            args += shlex.split(stripped[4:])
        elif stripped and not stripped.startswith("#"):
            break
    return args


def qsub(argv: list[str]) -> int:
    refused = control().get("qsub_fail")
    if refused:
        print(refused, file=sys.stderr)
        return int(control().get("qsub_fail_exit", 1))
    cli, rest = parse_qsub_args(argv)
    if len(rest) != 1:
        print("usage: qsub [-N name] [-o path] [-j oe] [-l resource=value] script", file=sys.stderr)
        return 2
    script_path = Path(rest[0]).resolve()
    try:
        script = script_path.read_text()
    except OSError:
        print(f"qsub: script file:: No such file or directory: {rest[0]}", file=sys.stderr)
        return 2
    opts, _ = parse_qsub_args(directives(script))
    opts["l"] = opts["l"] + cli.pop("l")
    opts.update(cli)
    resources: dict[str, Any] = {}
    for item in opts["l"]:
        key, _, value = item.partition("=")
        resources[key] = int(value) if value.isdigit() else value
    walltime = str(resources.setdefault("walltime", "01:00:00"))
    ncpus = int(resources.get("ncpus", 1)) if str(resources.get("ncpus", 1)).isdigit() else 1
    resources.setdefault("ncpus", ncpus)
    resources.setdefault("nodect", 1)
    resources.setdefault("place", "pack")
    name = str(opts.get("N", script_path.name))[:236]
    cwd = os.getcwd()
    now = time.time()
    with locked() as db:
        seq = db["next"]
        db["next"] = seq + 1
        job_id = f"{seq}.{SERVER}"
        copy = shim_dir() / "jobs" / f"{seq}.SC"
        copy.parent.mkdir(exist_ok=True)
        copy.write_text(script)
        held = matches(name, "hold")
        db["jobs"][job_id] = {
            "id": job_id, "seq": seq, "name": name, "owner": os.environ.get("USER", "root"),
            "queue": opts.get("q", "workq"), "project": opts.get("P", "_pbs_project_default"),
            "script": str(copy), "workdir": cwd, "join": opts.get("j", "n"),
            "output": str(Path(cwd, opts.get("o", f"{name}.o{seq}"))),
            "error": str(Path(cwd, opts.get("e", f"{name}.e{seq}"))),
            "walltime": seconds(walltime), "ncpus": ncpus, "resources": resources,
            "state": "H" if held else "Q", "substate": 20 if held else 10, "held": held,
            "ctime": now, "qtime": now, "etime": now, "mtime": now,
            "start_after": now + float(control().get("queue_delay", 0)), "run_count": 0,
            "exit_status": None, "comment": None, "submit_args": " ".join(shlex.quote(a) for a in argv),
        }  # fmt: skip
        tick(db)
    print(job_id)
    return 0


# ---- qstat ----------------------------------------------------------------------------------


def attributes(job: Job) -> dict[str, Any]:
    """The job's attributes in PBS Pro's order and JSON types (see tests/data/pbs)."""
    ran = job.get("stime") is not None
    a: dict[str, Any] = {"Job_Name": job["name"], "Job_Owner": f"{job['owner']}@{SERVER}"}
    if ran:
        used = job.get("walltime_used", time.time() - job["stime"])
        a["resources_used"] = {
            "cpupercent": 0, "cput": "00:00:00", "mem": "0kb", "ncpus": job["ncpus"],
            "vmem": "0kb", "walltime": hms(used),
        }  # fmt: skip
    a.update(job_state=job["state"], queue=job["queue"], server=SERVER, Checkpoint="u")
    a["ctime"] = stamp(job["ctime"])
    a["Error_Path"] = f"{SERVER}:{job['error']}"
    if ran:
        a["exec_host"] = f"{SERVER}/0*{job['ncpus']}"
        a["exec_vnode"] = f"({SERVER}:ncpus={job['ncpus']})"
    a.update(Hold_Types="u" if job["state"] == "H" else "n", Join_Path=job["join"], Keep_Files="n")
    a.update(Mail_Points="a", mtime=stamp(job["mtime"]), Output_Path=f"{SERVER}:{job['output']}")
    a.update(Priority=0, qtime=stamp(job["qtime"]), Rerunable="True")
    a["Resource_List"] = dict(sorted(job["resources"].items()))
    if ran:
        a["stime"] = stamp(job["stime"])
        if job["state"] == "F":
            a["obittime"] = stamp(job.get("obittime", job["mtime"]))
        if job.get("session_id"):
            a["session_id"] = job["session_id"]
        a["jobdir"] = os.environ.get("HOME", job["workdir"])
    a["substate"] = job["substate"]
    a["Variable_List"] = {
        "PBS_O_HOME": os.environ.get("HOME", "/"), "PBS_O_LOGNAME": job["owner"],
        "PBS_O_SHELL": "/bin/sh", "PBS_O_WORKDIR": job["workdir"], "PBS_O_SYSTEM": "Linux",
        "PBS_O_QUEUE": job["queue"], "PBS_O_HOST": SERVER,
    }  # fmt: skip
    if job.get("comment"):
        a["comment"] = job["comment"]
    a["etime"] = stamp(job["etime"])
    if job["run_count"]:
        a["run_count"] = job["run_count"]
    if job["state"] == "F" and job.get("exit_status") is not None:
        a["Exit_status"] = job["exit_status"]
    a.update(Submit_arguments=job["submit_args"], project=job["project"], Submit_Host=SERVER)
    return a


def text_value(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def wrap(line: str) -> str:
    """PBS Pro's ``qstat -f`` layout: 79 columns, continuation lines start with a tab."""
    out, line = [line[:79]], line[79:]
    while line:
        out.append("\t" + line[:71])
        line = line[71:]
    return "\n".join(out)


def as_text(job_id: str, attrs: dict[str, Any]) -> str:
    lines = [f"Job Id: {job_id}"]
    for key, value in attrs.items():
        if key in ("resources_used", "Resource_List"):
            lines += [wrap(f"    {key}.{k} = {v}") for k, v in value.items()]
        else:
            lines.append(wrap(f"    {key} = {text_value(value)}"))
    return "\n".join(lines) + "\n"


def qstat(argv: list[str]) -> int:
    if control().get("qstat_fail"):
        print("Connection refused", file=sys.stderr)
        print(f"qstat: cannot connect to server {SERVER} (errno=15010)", file=sys.stderr)
        return int(control().get("qstat_fail_exit", 1))
    history = full = False
    fmt = None
    ids: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "-F":
            if control().get("no_json"):
                print("qstat: invalid option -- 'F'", file=sys.stderr)
                print("usage:\n\tqstat [-J] [-p] [-t] [-x] [-E] [job_identifier... | destination...]", file=sys.stderr)
                return 2
            fmt, i = argv[i + 1] if i + 1 < len(argv) else None, i + 2
            continue
        if arg.startswith("-") and len(arg) > 1:
            history |= "x" in arg
            full |= "f" in arg
        else:
            ids.append(arg)
        i += 1
    with locked() as db:
        tick(db)
        jobs = db["jobs"]
        selected: list[Job] = []
        rc = 0
        for job_id in ids or list(jobs):
            job = jobs.get(job_id) or jobs.get(f"{job_id.split('.')[0]}.{SERVER}")
            if job is None:
                print(f"qstat: Unknown Job Id {job_id}", file=sys.stderr)
                rc = 153
            elif job["state"] == "F" and not history:
                if ids:
                    hint = "Job has finished, use -x or -H to obtain historical job information"
                    print(f"qstat: {job['id']} {hint}", file=sys.stderr)
                    rc = 35
            else:
                selected.append(job)
    if not full:
        print("qstat (shim): only -f is implemented", file=sys.stderr)
        return 2
    if fmt == "json":
        doc: dict[str, Any] = {"timestamp": int(time.time()), "pbs_version": VERSION, "pbs_server": SERVER}
        if selected:
            doc["Jobs"] = {job["id"]: attributes(job) for job in selected}
        print(json.dumps(doc, indent=4, separators=(",", ":")))
    else:
        print("\n".join(as_text(job["id"], attributes(job)) for job in selected), end="")
    return rc


# ---- qdel, qselect, qrls ----------------------------------------------------------------------


def qdel(argv: list[str]) -> int:
    rc = 0
    for job_id in [a for a in argv if not a.startswith("-")]:
        with locked() as db:
            job = db["jobs"].get(job_id)
            if job is None:
                print(f"qdel: Unknown Job Id {job_id}", file=sys.stderr)
                rc = 153
                continue
            if job["state"] == "F":
                print(f"qdel: Job has finished {job_id}", file=sys.stderr)
                rc = 35
                continue
            if job["state"] == "R" and job.get("pgid"):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(job["pgid"], signal.SIGTERM)
                finish(job, 271, ran_comment(job))
            else:
                finish(job, None, None)
    return rc


def qselect(argv: list[str]) -> int:
    name = argv[argv.index("-N") + 1] if "-N" in argv and argv.index("-N") + 1 < len(argv) else None
    history = "-x" in argv
    with locked() as db:
        tick(db)
        for job in sorted(db["jobs"].values(), key=lambda j: j["seq"]):
            if (name is None or job["name"] == name) and (history or job["state"] != "F"):
                print(job["id"])
    return 0


def qrls(argv: list[str]) -> int:
    with locked() as db:
        for job_id in argv:
            job = db["jobs"].get(job_id)
            if job is not None and job["state"] == "H":
                job.update(state="Q", substate=10, start_after=0, mtime=time.time())
        tick(db)
    return 0


COMMANDS = {"qsub": qsub, "qstat": qstat, "qdel": qdel, "qselect": qselect, "qrls": qrls}


def main(command: str, argv: list[str]) -> int:
    if command == "_run":
        run_job(argv[0])
        return 0
    return COMMANDS[command](argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
