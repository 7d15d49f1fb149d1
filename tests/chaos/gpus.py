"""GPU targets of the chaos suite: a fake ``nvidia-smi`` whose memory follows the live jobs, and
the live truth of invariant (a) read from ``/proc`` (never from the state file).

A GPU scenario's targets each get a GPU table (``GpuHost``: index, uuid, total and a foreign
base load, in MiB) written to ``<dir>/<host>.json``. The fake (``FAKE_SMI``, installed as
``<bin>/nvidia-smi``) answers exactly the two queries of ``reconciler.backends.gpus``
(``GPU_QUERY``/``APPS_QUERY``, CSV, no header, no units, like the real tool) and fails on any
other. Its ``memory.used`` is the base load plus, per GPU, the memory of every live job of the
scenario on that host whose ``CUDA_VISIBLE_DEVICES`` names the GPU; its compute-apps list is those
jobs (pid, uuid, MiB). A job's memory shows only once it has lived ``CHAOS_GPU_WARMUP`` seconds
(a real job allocates after its CUDA start-up: a pass soon after the launch sees the GPU as free as
before, issue 14 item 3). A job is a live process whose environment holds ``CHAOS_TAG=<scenario>``,
``CHAOS_GPU_HOST=<host>`` and ``CHAOS_VRAM_MB`` (the target's variables and the experiment's env
set them) and whose command line runs ``job.py``; zombies are dead. So the memory appears when
the job starts and disappears when it exits, whatever the reconciler believes.

``live_runs`` reads the same truth for the checks; ``gpu_violations`` is invariant (a): per GPU at
most ``max_runs_per_gpu`` live runs, and the runs' reservations (``vram x vram_factor``) within
the memory the GPU has without them (total minus its foreign load).
"""

from __future__ import annotations

import json
import textwrap
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
JOB_MARK = "job.py"

FAKE_SMI = textwrap.dedent(
    '''\
    """Chaos fake nvidia-smi: the GPU table of $CHAOS_GPU_HOST, memory from the live jobs."""
    import json, os, sys
    GPU_ARGS = ["--query-gpu=index,uuid,name,memory.total,memory.used,memory.free,utilization.gpu",
                "--format=csv,noheader,nounits"]
    APPS_ARGS = ["--query-compute-apps=pid,gpu_uuid,used_memory", "--format=csv,noheader,nounits"]

    def environ(pid, warmup):
        try:
            with open("/proc/%s/stat" % pid, "rb") as f:
                stat = f.read()
            rest = stat[stat.rfind(b")") + 2:].split()
            if rest[0] in (b"Z", b"X"):
                return None
            if warmup > 0:
                with open("/proc/uptime") as f:
                    uptime = float(f.read().split()[0])
                if uptime - int(rest[19]) / os.sysconf("SC_CLK_TCK") < warmup:
                    return None
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\\0")
            if b"python" not in os.path.basename(argv[0]) or b"job.py" not in argv[1:3]:
                return None
            with open("/proc/%s/environ" % pid, "rb") as f:
                data = f.read()
        except OSError:
            return None
        return dict(kv.split(b"=", 1) for kv in data.split(b"\\0") if b"=" in kv)

    def main(argv):
        if argv not in (GPU_ARGS, APPS_ARGS):
            sys.stderr.write("fake nvidia-smi: unsupported invocation %r\\n" % (argv,))
            return 2
        host, tag = os.environ.get("CHAOS_GPU_HOST", ""), os.environ.get("CHAOS_TAG", "")
        try:
            with open(os.path.join(os.environ["CHAOS_GPU_DIR"], host + ".json")) as f:
                gpus = json.load(f)
        except (KeyError, OSError, ValueError) as exc:
            sys.stderr.write("fake nvidia-smi: no GPU table for host %r: %s\\n" % (host, exc))
            return 3
        used = {g["index"]: 0 for g in gpus}
        apps = []
        warmup = float(os.environ.get("CHAOS_GPU_WARMUP", "0") or 0)
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            env = environ(name, warmup)
            if not env or env.get(b"CHAOS_TAG") != tag.encode() or env.get(b"CHAOS_GPU_HOST") != host.encode():
                continue
            mb = int(env.get(b"CHAOS_VRAM_MB", b"0") or 0)
            for word in env.get(b"CUDA_VISIBLE_DEVICES", b"").decode().split(","):
                if word.strip().isdigit() and int(word) in used:
                    used[int(word)] += mb
                    apps.append((int(name), int(word), mb))
        if argv == GPU_ARGS:
            for g in gpus:
                u = g["base_used"] + used[g["index"]]
                print("%d, %s, %s, %d, %d, %d, %d" % (g["index"], g["uuid"], g["name"], g["total"], u,
                                                       max(0, g["total"] - u), 90 if used[g["index"]] else 0))
        else:
            uuid = {g["index"]: g["uuid"] for g in gpus}
            for pid, index, mb in sorted(apps):
                print("%d, %s, %d" % (pid, uuid[index], mb))
        return 0

    sys.exit(main(sys.argv[1:]))
    '''
)

SYSTEM_PYTHON = "/usr/bin/python3"
"""The fake's interpreter: readable by the SSH targets' user too (the harness's venv may not be)."""


@dataclass(frozen=True)
class GpuHost:
    """One GPU of a target's table (MiB)."""

    index: int
    total: int = 81559
    base_used: int = 4
    """Memory held by processes not of ours (a foreign job)."""
    name: str = "NVIDIA H100 80GB HBM3"
    host_no: int = 0
    """Makes the uuid unique across the scenario's hosts."""

    @property
    def uuid(self) -> str:
        return f"GPU-{self.index:08d}-0000-4000-8000-{self.host_no:012d}"

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "uuid": self.uuid,
            "name": self.name,
            "total": self.total,
            "base_used": self.base_used,
        }


def install(bin_dir: Path, gpu_dir: Path, tables: Mapping[str, Sequence[GpuHost]]) -> None:
    """Write the fake as ``<bin_dir>/nvidia-smi`` and each host's table into ``gpu_dir``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    gpu_dir.mkdir(parents=True, exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!{SYSTEM_PYTHON} -S\n" + FAKE_SMI)
    smi.chmod(0o755)
    for host, gpus in tables.items():
        (gpu_dir / f"{host}.json").write_text(json.dumps([g.to_json() for g in gpus]))
        (gpu_dir / f"{host}.json").chmod(0o644)


@dataclass(frozen=True)
class LiveRun:
    """One live job process of the scenario, as ``/proc`` shows it."""

    pid: int
    host: str
    exp_id: str
    attempt: str
    gpus: tuple[int, ...]
    vram_mb: int

    def label(self) -> str:
        return f"{self.exp_id}#{self.attempt} (pid {self.pid})"


def _is_job(argv: list[bytes]) -> bool:
    """The job's own interpreter (``python3 job.py ...``), not the shell that started it."""
    return b"python" in Path(argv[0].decode(errors="replace")).name.encode() and JOB_MARK.encode() in argv[1:3]


def _environ(pid: str) -> dict[str, str] | None:
    base = PROC / pid
    try:
        stat = (base / "stat").read_bytes()
        if stat[stat.rfind(b")") + 2 :][:1] in (b"Z", b"X"):
            return None
        argv = (base / "cmdline").read_bytes().split(b"\0")
        if not _is_job(argv):
            return None
        data = (base / "environ").read_bytes()
    except OSError:
        return None
    pairs = (kv.split(b"=", 1) for kv in data.split(b"\0") if b"=" in kv)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def live_runs(tag: str) -> list[LiveRun]:
    """Every live job process of the scenario ``tag`` (any target, GPU or not)."""
    runs: list[LiveRun] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        env = _environ(entry.name)
        if env is None or env.get("CHAOS_TAG") != tag:
            continue
        words = [w.strip() for w in env.get("CUDA_VISIBLE_DEVICES", "").split(",")]
        runs.append(
            LiveRun(
                pid=int(entry.name),
                host=env.get("CHAOS_GPU_HOST", ""),
                exp_id=env.get("EXP_ID", "?"),
                attempt=env.get("RECONCILER_ATTEMPT", "?"),
                gpus=tuple(int(w) for w in words if w.isdigit()),
                vram_mb=int(env.get("CHAOS_VRAM_MB") or 0),
            )
        )
    return sorted(runs, key=lambda r: r.pid)


def gpu_violations(
    runs: list[LiveRun], tables: Mapping[str, Sequence[GpuHost]], max_runs_per_gpu: int, vram_factor: float
) -> dict[tuple[str, int], str]:
    """Invariant (a) over the live runs: (host, GPU) -> what is wrong there."""
    on: dict[tuple[str, int], dict[tuple[str, str], LiveRun]] = defaultdict(dict)
    for run in runs:
        for index in run.gpus:
            on[(run.host, index)][(run.exp_id, run.attempt)] = run
    out: dict[tuple[str, int], str] = {}
    for (host, index), by_run in sorted(on.items()):
        gpu = next((g for g in tables.get(host, ()) if g.index == index), None)
        if gpu is None:
            continue
        labels = ", ".join(r.label() for r in by_run.values())
        if len(by_run) > max_runs_per_gpu:
            out[(host, index)] = (
                f"{host} GPU {index} holds {len(by_run)} live runs > max_runs_per_gpu {max_runs_per_gpu}: {labels}"
            )
            continue
        reserved = sum(r.vram_mb for r in by_run.values()) * vram_factor
        room = gpu.total - gpu.base_used
        if reserved > room + 1:
            out[(host, index)] = (
                f"{host} GPU {index} reserves {reserved:.0f} MiB (vram x {vram_factor}) > {room} MiB free "
                f"without our runs: {labels}"
            )
    return out
