"""A seed project moves over with runs live on every platform (issue 17, "What it must show").

The seed project is the seed's own template (``tests/scaffold/fixtures/seed_template_project``:
its config.md with comments, its Gadi job script, its env verdict and escalations) with a state
holding every status the seed writes: done, running on a lab server (a real pid on the loopback
sshd, launched as the seed's ``exec_local`` does), running on Gadi (a PBS job of the project's PBS
shim) and on C500 (a job of the platform-CLI shim), pending, failed, on hold, unreachable,
cancelled, archived pilots, a sidecar not merged yet. ``reconcile import-seed`` converts it, the
result validates and is committed, and ``reconcile --once`` passes then: relaunch nothing done or
running, adopt the live runs (no launch for them), finish them (results collected from the seed's
checkouts), settle the one killed under them as lost, and run what was pending.

What the test changes after the import is what this machine needs, not what a lab would: the SSH
aliases resolve through an ssh config to the loopback sshd, Gadi and C500 are the local shims
(their CLIs print the real tools' formats), and no conda env exists here.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.engine.batch_project import passes_until, reconcile, with_path
from tests.example.tools import BIN, git_env, run, tool
from tests.fixtures.sshd import SshdHost, write_ssh_config
from tests.projectkit import commit_project, recorded

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

TEMPLATE = Path(__file__).resolve().parents[1] / "scaffold" / "fixtures" / "seed_template_project"
SHIMS = Path(__file__).resolve().parents[1] / "shims"
PROJECT = "tta-calib"

JOB = """\
#!/bin/sh
# The project's training script, as the seed ran it: `sh experiments/scripts/job.sh ID RESULT --seed N`.
# A run the test started under the seed waits while experiments/hold/<ID> exists in its checkout.
id=$1; out=$2; seed=$4
while [ -e "experiments/hold/$id" ]; do sleep 0.2; done
echo "training $id seed $seed"
mkdir -p "$(dirname "$out")"
printf 'exp_id,method,dataset,group,metric,seed,value,host,gpu,finished_at\\n' > "$out.tmp"
row='%s,tent,cifar10c,main,acc,%s,0.%s5,%s,0,2026-12-01T10:00:00Z\\n'
printf "$row" "$id" "$seed" "$seed" "$(uname -n)" >> "$out.tmp"
mv "$out.tmp" "$out"
"""

ACP_TEMPLATES = {
    "submit": "acp jobs create --workspace-name ws --name {name} -- /bin/sh {script}",
    "status": "acp jobs describe {job_id}",
    "cancel": "acp jobs stop {job_id} || true",
    "find": "acp jobs list --name {name}",
    "job_id_regex": "pt-[a-z0-9]+",
    "state_regex": r"^state: (\w+)",
}


def command(exp_id: str, seed: int) -> str:
    return f"sh experiments/scripts/job.sh {exp_id} experiments/results/{exp_id}.csv --seed {seed}"


def entry(exp_id: str, status: str, seed: int, **fields: Any) -> dict[str, Any]:
    base = {
        "id": exp_id,
        "status": status,
        "command": command(exp_id, seed),
        "phase": "Phase 4",
        "group": "ablation" if exp_id.startswith("exp3") else "main",
        "method": "tent",
        "dataset": "cifar10c",
        "seed": seed,
        "started": None,
        "host": None,
        "gpu": None,
        "pid": None,
        "job_id": None,
        "finished": None,
        "wandb_run_id": None,
        "retry_count": 0,
        "max_retries": 0,
        "notes": "",
        "result_file": f"experiments/results/{exp_id}.csv",
        "expected_duration_hours": 1,
    }
    base.update(fields)
    return base


class Seed:
    """The seed's world: its checkout on the lab server, Gadi's scratch, C500's AFS, the shims."""

    def __init__(self, tmp: Path, lab1: SshdHost, rctest_dir: Path) -> None:
        self.tmp = tmp
        self.lab1 = lab1
        self.lab_checkout = rctest_dir / "projects" / PROJECT
        self.gadi_checkout = tmp / "scratch" / PROJECT
        self.c500_checkout = tmp / "afs" / PROJECT
        self.env = with_path(
            {
                **git_env(tmp),
                "PBS_SHIM_DIR": str(tmp / "pbs"),
                "ACP_DIR": str(tmp / "acp"),
                "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            },
            SHIMS / "pbs",
            SHIMS / "cmdplatform",
        )
        for checkout in (self.gadi_checkout, self.c500_checkout):
            self._sync(checkout)
        self._sync(self.lab_checkout)
        account = self.lab_checkout.stat()
        for path in [rctest_dir / "projects", *rctest_dir.rglob("*")]:
            os.lchown(path, account.st_uid, account.st_gid)
        os.lchown(self.lab_checkout.parent, os.stat(rctest_dir).st_uid, os.stat(rctest_dir).st_gid)

    def _sync(self, checkout: Path) -> None:
        """What the seed's ENV agent rsyncs: the scripts; plus a hold file per run started there."""
        (checkout / "experiments" / "scripts").mkdir(parents=True, exist_ok=True)
        (checkout / "experiments" / "scripts" / "job.sh").write_text(JOB)
        (checkout / "experiments" / "hold").mkdir(parents=True, exist_ok=True)
        (checkout / "experiments" / "logs").mkdir(parents=True, exist_ok=True)
        if checkout is self.lab_checkout:
            uid = os.stat(checkout.parents[1]).st_uid
            for path in [checkout, *checkout.rglob("*")]:
                os.lchown(path, uid, uid)

    def hold(self, checkout: Path, exp_id: str) -> None:
        path = checkout / "experiments" / "hold" / exp_id
        path.write_text("")
        os.lchown(path, os.stat(checkout).st_uid, os.stat(checkout).st_gid)

    def release(self, checkout: Path, exp_id: str) -> None:
        (checkout / "experiments" / "hold" / exp_id).unlink()

    def exec_local(self, exp_id: str, seed: int) -> int:
        """The seed's lab-server launch over SSH; the pid it records is the wrapper's."""
        self.hold(self.lab_checkout, exp_id)
        inner = f"{command(exp_id, seed)} > experiments/logs/{exp_id}.log 2>&1; echo EXIT_CODE:$?"
        script = (
            f"cd {shlex.quote(str(self.lab_checkout))} && nohup bash -c {shlex.quote(inner)}"
            f" > experiments/logs/{exp_id}_exit.log 2>&1 < /dev/null & echo $!"
        )
        host = self.lab1
        out = subprocess.run(
            [
                *("ssh", "-F", str(host.empty_config), "-i", str(host.key_path), "-p", str(host.port)),
                *("-o", f"UserKnownHostsFile={host.known_hosts}", "-o", "BatchMode=yes"),
                *(f"{host.user}@{host.address}", script),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return int(out.stdout.strip().splitlines()[-1])

    def exec_gadi(self, exp_id: str, seed: int) -> str:
        """The seed's Gadi launch: its own PBS script, submitted with qsub (the PBS shim)."""
        self.hold(self.gadi_checkout, exp_id)
        script = self.gadi_checkout / f"{exp_id}.pbs"
        script.write_text(f"#!/bin/bash\n#PBS -N {exp_id}\ncd {self.gadi_checkout}\n{command(exp_id, seed)}\n")
        argv = ["qsub", str(script)]
        out = subprocess.run(argv, cwd=self.gadi_checkout, env=self.env, capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def exec_c500(self, exp_id: str, seed: int) -> str:
        """The seed's C500 launch: ``sco acp jobs create`` (the platform shim), in its AFS checkout."""
        self.hold(self.c500_checkout, exp_id)
        argv = ["acp", "jobs", "create", "--name", exp_id, "--", "sh", "-c", command(exp_id, seed)]
        out = subprocess.run(argv, cwd=self.c500_checkout, env=self.env, capture_output=True, text=True, check=True)
        return out.stdout.split("job_id:")[1].split()[0]


def seed_project(tmp: Path, world: Seed) -> tuple[Path, dict[str, int | str]]:
    """The seed project with its live runs started; returns it and the pids and job ids."""
    project = Path(shutil.copytree(TEMPLATE, tmp / "seed"))
    config_md = project / "config" / "config.md"
    text = config_md.read_text()
    text = text.replace("/scratch/ab12/alice", str(tmp / "scratch")).replace(
        "/mnt/afs/alice/intern/alice", str(tmp / "afs")
    )
    config_md.write_text(text)
    verdict_file = project / "progress" / "env_xuchang-lab1.json"
    verdict = json.loads(verdict_file.read_text())
    verdict["remote_project_dir"] = str(world.lab_checkout)
    verdict_file.write_text(json.dumps(verdict))
    (project / "progress" / "escalate_exp1_cifar10c_main_s1.md").write_text(
        "# Escalation: exp1_cifar10c_main_s1\n\nexp_id: exp1_cifar10c_main_s1\nhost: xuchang-lab2\n"
        "reason: host unreachable after 3 consecutive attempts\naction_needed: check the host, then retry\n"
        "timestamp: 2026-11-02T08:30:00+08:00\n"
    )
    (project / "experiments" / "scripts").mkdir(parents=True)
    (project / "experiments" / "scripts" / "job.sh").write_text(JOB)
    done_csv = project / "experiments" / "results" / "exp1_cifar10c_main_s0.csv"
    done_csv.parent.mkdir(parents=True)
    done_csv.write_text(
        "exp_id,method,dataset,group,metric,seed,value,host,gpu,finished_at\n"
        "exp1_cifar10c_main_s0,tent,cifar10c,main,acc,0,0.9,xuchang-lab1,1,2026-11-30T10:00:00Z\n"
    )
    started = datetime.now(timezone.utc).replace(microsecond=0).isoformat()  # the seed's sidecar time
    live = {
        "lab_ok": world.exec_local("exp1_cifar10c_main_s2", 2),
        "lab_killed": world.exec_local("exp2_cifar10c_baseline_s0", 0),
        "gadi": world.exec_gadi("exp2_cifar10c_baseline_s1", 1),
        "c500": world.exec_c500("exp2_cifar10c_baseline_s2", 2),
    }
    old = json.loads((project / "dispatch" / "state.json").read_text())
    pilots = [e for e in old["experiments"] if "archived" in str(e.get("phase"))]
    experiments = [
        entry("exp1_cifar10c_main_s0", "done", 0, host="xuchang-lab1", gpu=1, pid=482113, started=started),
        entry("exp1_cifar10c_main_s1", "on_hold", 1, host="xuchang-lab2", notes="host unreachable"),
        entry("exp1_cifar10c_main_s2", "running", 2, host="xuchang-lab1", gpu=[0], pid=live["lab_ok"], started=started),
        entry("exp2_cifar10c_baseline_s0", "running", 0, host="xuchang-lab1", gpu=1, pid=live["lab_killed"]),
        entry("exp2_cifar10c_baseline_s1", "running", 1, host="gadi", job_id=live["gadi"], started=started),
        entry("exp2_cifar10c_baseline_s2", "running", 2, host="finn_cci_c500", job_id=live["c500"], started=started),
        entry("exp3_cifar10c_ablation_s0", "pending", 0),
        entry("exp3_cifar10c_ablation_s1", "failed", 1, host="xuchang-lab2", notes="CUDA out of memory"),
        entry("exp3_cifar10c_ablation_s2", "cancelled", 2),
        entry(
            "exp3_cifar10c_ablation_s3", "unreachable", 3, host="xuchang-lab2", notes="SSH connection failed at launch"
        ),
        *pilots,
    ]
    for e in experiments:
        e["group"] = "baseline" if e["id"].startswith("exp2") else e["group"]
    (project / "dispatch" / "state.json").write_text(
        json.dumps({"project": PROJECT, "experiments": experiments}, indent=2)
    )
    sidecar = {"id": "exp1_cifar10c_main_s2", "wandb_run_id": "https://wandb.ai/vision-lab/tta-calib/runs/s2"}
    (project / "dispatch" / "exp1_cifar10c_main_s2.status.json").write_text(json.dumps(sidecar))
    return project, live


def adapt_to_this_machine(project: Path, world: Seed, hosts: list[SshdHost]) -> None:
    """Point the imported targets at this machine's stand-ins (see the module docstring)."""
    ssh_config = write_ssh_config(
        world.tmp / "ssh_config", {"xuchang-lab1": hosts[0].config_entry(), "xuchang-lab2": hosts[1].config_entry()}
    )
    path = project / "config" / "reconciler.yaml"
    config = yaml.safe_load(path.read_text())
    ours = f"{world.lab_checkout.parents[1].name}/ours"
    for target in config["targets"].values():
        target.pop("env", None)  # no conda here
        if target["kind"] == "ssh":
            target.update(config_file=str(ssh_config), root=ours)
        else:
            target.pop("host", None)  # the shims run here
            target["python"] = "python3"
        if target["kind"] == "pbs":
            target["batch"].pop("modules", None)
        if target["kind"] == "command":
            target["templates"].update(ACP_TEMPLATES)
    config["policies"] = {"poll_interval": 1, "backoff": {"base_seconds": 0, "factor": 1, "max_seconds": 0}}
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.mark.timeout(600)
def test_a_seed_project_moves_over_with_its_live_runs(
    tmp_path: Path, sshd_hosts: list[SshdHost], rctest_dir: Path
) -> None:
    world = Seed(tmp_path, sshd_hosts[0], rctest_dir)
    project, live = seed_project(tmp_path, world)

    proc = run([tool("reconcile"), "import-seed", str(project)], cwd=project, env=world.env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for exp_id in ("exp1_cifar10c_main_s2", "exp2_cifar10c_baseline_s0", "exp2_cifar10c_baseline_s1"):
        assert f"{exp_id}: running under the seed" in proc.stdout
    proc = run([tool("reconcile"), "validate", str(project)], cwd=project, env=world.env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    adapt_to_this_machine(project, world, sshd_hosts)
    commit_project(project, {}, message="import seed project")

    # The first pass adopts the live runs: nothing is launched for them or for what is done.
    first = reconcile(project, world.env, "--once")
    assert first.returncode in (0, 1), first.stdout + first.stderr
    state = recorded(project)
    for exp_id, how in (
        ("exp1_cifar10c_main_s2", "pid"),
        ("exp2_cifar10c_baseline_s0", "pid"),
        ("exp2_cifar10c_baseline_s1", "job_id"),
        ("exp2_cifar10c_baseline_s2", "job_id"),
    ):
        entry = state[exp_id]
        assert entry["status"] in ("running", "queued"), (exp_id, entry)
        assert [a["origin"] for a in entry["attempts"]] == ["seed"], entry["attempts"]
        assert entry["attempts"][0][how] is not None
    lab = state["exp1_cifar10c_main_s2"]["attempts"][0]
    assert lab["pid"] == live["lab_ok"] and lab["run_dir"] == str(world.lab_checkout)
    assert state["exp1_cifar10c_main_s2"]["wandb_run_id"].endswith("/runs/s2")  # the sidecar was merged
    assert state["exp1_cifar10c_main_s0"]["status"] == "done" and not state["exp1_cifar10c_main_s0"]["attempts"]
    assert state["exp1_cifar10c_main_s1"]["status"] == "on_hold"
    assert state["exp1_cifar10c_main_s1"]["escalation"]["status"] == "open"
    for pilot in ("pilot1_cifar10c_core_s0", "pilot1_cifar10c_core_s1"):
        assert state[pilot]["status"] == "done" and not state[pilot]["attempts"]
    launched = {k for k, e in state.items() if any(a.get("origin") is None for a in e["attempts"])}
    assert launched == {"exp3_cifar10c_ablation_s0", "exp3_cifar10c_ablation_s3"}  # pending, and never started

    # A run killed outside anyone's watch (the OOM killer, a person: the wrapper first, so no exit
    # code is written, then the job) left neither exit code nor result: it is lost.
    below = _descendants(int(live["lab_killed"]))
    os.kill(int(live["lab_killed"]), signal.SIGKILL)
    for pid in below:
        os.kill(pid, signal.SIGKILL)
    for checkout, exp_id in (
        (world.lab_checkout, "exp1_cifar10c_main_s2"),
        (world.gadi_checkout, "exp2_cifar10c_baseline_s1"),
        (world.c500_checkout, "exp2_cifar10c_baseline_s2"),
    ):
        world.release(checkout, exp_id)

    def settled(now: dict[str, dict[str, Any]]) -> bool:
        return all(e["status"] in ("done", "failed", "cancelled", "on_hold") for e in now.values())

    final = passes_until(project, world.env, settled, deadline=300)
    statuses = {k: v["status"] for k, v in final.items()}
    assert statuses == {
        "exp1_cifar10c_main_s0": "done",
        "exp1_cifar10c_main_s1": "on_hold",
        "exp1_cifar10c_main_s2": "done",
        "exp2_cifar10c_baseline_s0": "failed",
        "exp2_cifar10c_baseline_s1": "done",
        "exp2_cifar10c_baseline_s2": "done",
        "exp3_cifar10c_ablation_s0": "done",
        "exp3_cifar10c_ablation_s1": "failed",
        "exp3_cifar10c_ablation_s2": "cancelled",
        "exp3_cifar10c_ablation_s3": "done",
        "pilot1_cifar10c_core_s0": "done",
        "pilot1_cifar10c_core_s1": "done",
    }, statuses
    assert final["exp2_cifar10c_baseline_s0"]["failure_class"] == "lost"
    for exp_id, seed in (
        ("exp1_cifar10c_main_s2", 2),
        ("exp2_cifar10c_baseline_s1", 1),
        ("exp2_cifar10c_baseline_s2", 2),
    ):
        entry = final[exp_id]
        assert [a.get("origin") for a in entry["attempts"]] == ["seed"], entry["attempts"]  # never relaunched
        assert entry["results"] == {"acc": float(f"0.{seed}5")}
        assert (project / "experiments" / "results" / f"{exp_id}.csv").read_text().startswith("exp_id,method")
    for exp_id in ("exp3_cifar10c_ablation_s0", "exp3_cifar10c_ablation_s3"):
        assert [a.get("origin") for a in final[exp_id]["attempts"]] == [None]  # ours: launched once
    assert not final["exp3_cifar10c_ablation_s1"]["attempts"]
    # done under the seed: its result file in the project gives its final metrics (the seed's dashboard reads them)
    assert final["exp1_cifar10c_main_s0"]["results"] == {"acc": 0.9}
    assert not final["exp1_cifar10c_main_s0"]["attempts"]


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    parent = {int(a): int(b) for a, b in (line.split() for line in out.splitlines())}
    below: set[int] = set()
    grew = True
    while grew:
        more = {p for p, pp in parent.items() if (pp == pid or pp in below) and p not in below}
        below |= more
        grew = bool(more)
    return sorted(below)
