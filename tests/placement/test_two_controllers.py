"""Two controllers, two projects, one SSH target (issue 18, "What it must show").

Both projects place 30 GB runs (36 GB reserved with the 1.2 factor) on the same loopback sshd host
with two fake 80 GB GPUs; in every round their ``reconcile --once`` passes start together. A job
"allocates" its memory half a second after it starts (a real job's young phase, when
``nvidia-smi`` does not show it yet) by registering its pid and 30 GB in the fake's table, and at
that moment checks, under a lock, that its GPU's registered memory does not exceed the GPU's: a
third 30 GB job on one GPU is an over-subscription. With ``gpus.leases`` no round over-subscribes;
without it, both controllers read the same free memory and the same rounds do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.fixtures.fake_gpu import FakeGpu, FakeGpus
from tests.fixtures.sshd import SshdHost
from tests.projectkit import commit_project, recorded

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

ROUNDS = int(os.environ.get("RECONCILER_LEASE_ROUNDS", "200"))
TOTAL_MB = 80 * 1024
JOB_MB = 30 * 1024

JOB = """\
import fcntl, json, os, sys, time

out, mb, lag, hold = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
apps, total = os.environ["LEASE_TEST_APPS"], float(os.environ["LEASE_TEST_TOTAL_MB"])
gpu = int(os.environ["CUDA_VISIBLE_DEVICES"].split(",")[0])
time.sleep(lag)  # young: nvidia-smi shows nothing of it yet


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rfind(")") + 2:][:1] not in ("Z", "X")


mine = os.path.join(apps, "%d.json" % os.getpid())
with open(os.path.join(apps, ".lock"), "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    with open(mine + ".tmp", "w") as f:
        json.dump({"gpu": gpu, "used_memory": mb}, f)
    os.rename(mine + ".tmp", mine)
    used = 0.0
    for name in os.listdir(apps):
        if name.endswith(".json") and name[:-5].isdigit() and alive(int(name[:-5])):
            with open(os.path.join(apps, name)) as f:
                doc = json.load(f)
            used += doc["used_memory"] if doc["gpu"] == gpu else 0.0
    if used > total:
        with open(os.path.join(apps, "violations.log"), "a") as f:
            f.write("GPU %d: %.0f MiB of %.0f by %s\\n" % (gpu, used, total, os.environ.get("EXP_ID")))
time.sleep(hold)
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    f.write("exp_id,method,dataset,group,metric,seed,value,host,gpu,finished_at\\n")
    f.write("%s,m,d,main,acc,0,1.0,h,%d,2026-12-06T00:00:00Z\\n" % (os.environ["EXP_ID"], gpu))
os.unlink(mine)
"""


def project(tmp: Path, name: str, host: SshdHost, fake_python: str, setup: str, shared: Path, leases: bool) -> Path:
    gpus: dict[str, object] = {"max_runs_per_gpu": 4, "blacklist_models": []}
    if leases:
        gpus["leases"] = str(shared / "leases")
    target = {
        "kind": "ssh",
        "host": host.address,
        "port": host.port,
        "user": host.user,
        "identity_file": str(host.key_path),
        "known_hosts": str(host.known_hosts),
        "config_file": str(host.empty_config),
        "root": f"{shared.name}/{name}",
        "python": fake_python,
        "env": {
            "setup": [setup],
            "variables": {"LEASE_TEST_APPS": str(shared / "apps"), "LEASE_TEST_TOTAL_MB": str(TOTAL_MB)},
        },
        "gpus": gpus,
    }
    config = {
        "version": 1,
        "project": name,
        "targets": {"lab": target},
        "policies": {"poll_interval": 1, "env_ttl_hours": 1000},
    }
    dispatch = {
        "version": 1,
        "experiments": [
            {
                "id": "job",
                "command": f"python3 job.py {{result_file}} {JOB_MB} 0.5 1.2",
                "vram_gb": 30,
                "seeds": list(range(ROUNDS * 4)),
            }
        ],
    }
    files = {
        "config/reconciler.yaml": yaml.safe_dump(config, sort_keys=False),
        "dispatch/jobs.yaml": yaml.safe_dump(dispatch, sort_keys=False),
        "job.py": JOB,
    }
    return commit_project(tmp / name, files)


def once(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "--once", "-C", str(path)],
        cwd=path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_rounds(
    tmp: Path, hosts: list[SshdHost], shared: Path, fake_gpus: FakeGpus, *, leases: bool, rounds: int
) -> tuple[list[str], int, float]:
    """Rounds of two concurrent passes; returns the over-subscriptions, the launches and the most
    memory the live leases ever held on one GPU (sampled after each round)."""
    apps = shared / "apps"
    apps.mkdir()
    owner = shared.stat()
    os.chown(apps, owner.st_uid, owner.st_gid)
    gpus = [FakeGpu(i, memory_total=TOTAL_MB, memory_used=0) for i in (0, 1)]
    fake = fake_gpus.ssh("lab", shared, gpus)
    fake.set(fake.gpus, apps_dir=apps)
    projects = [project(tmp, n, hosts[0], fake.python(), fake.setup, shared, leases) for n in ("proj-a", "proj-b")]
    most = 0.0
    with ThreadPoolExecutor(2) as pool:
        for _ in range(rounds):
            for done in pool.map(once, projects):
                assert done.returncode in (0, 1), done.stdout + done.stderr
            most = max(most, _leased_peak(shared / "leases"))
    violations = (apps / "violations.log").read_text().splitlines() if (apps / "violations.log").exists() else []
    launched = sum(len(e["attempts"]) for p in projects for e in recorded(p).values())
    return violations, launched, most


def _leased_peak(directory: Path) -> float:
    held: dict[int, float] = {}
    for path in directory.glob("*.json") if directory.is_dir() else ():
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for gpu in doc["gpus"]:
            held[gpu] = held.get(gpu, 0.0) + doc["reserved_mb"]
    return max(held.values(), default=0.0)


@pytest.mark.timeout(1200)  # 200 rounds of two real passes over SSH: ~2 min idle, longer on a busy machine
def test_two_controllers_never_oversubscribe_a_leased_gpu(
    tmp_path: Path, sshd_hosts: list[SshdHost], rctest_dir: Path, fake_gpus: FakeGpus
) -> None:
    violations, launched, most = run_rounds(tmp_path, sshd_hosts, rctest_dir, fake_gpus, leases=True, rounds=ROUNDS)
    assert violations == []
    assert most <= TOTAL_MB  # sampled between rounds: the leases never held more than a GPU has
    assert launched >= ROUNDS  # the GPUs were contended: runs went through all along


def test_without_leases_the_same_rounds_oversubscribe(
    tmp_path: Path, sshd_hosts: list[SshdHost], rctest_dir: Path, fake_gpus: FakeGpus
) -> None:
    """The control: what the leases prevent does happen without them (so the test above can fail)."""
    violations, _, _ = run_rounds(tmp_path, sshd_hosts, rctest_dir, fake_gpus, leases=False, rounds=20)
    assert violations
