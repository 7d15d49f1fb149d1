"""The probe end to end: command count, compact records, details, GPUs through a fake
``nvidia-smi`` on PATH, root resolution, an old Python on the target; plus ship and collect."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from reconciler.backends import probe as probe_mod
from reconciler.backends.gpus import foreign_process_counts
from reconciler.backends.local import LocalTransport
from reconciler.backends.shell import ShellRunner
from reconciler.errors import RemoteFileMissing, TransportError
from reconciler.model.actions import Collect
from reconciler.model.config import Target, TargetKind
from reconciler.model.observed import TargetObservation
from tests.backends.helpers import PROJECT, Backend, fake_run_dir, kill_for, make_launch, poll, proc_state, run

DATA = Path(__file__).parent.parent / "data" / "nvidia-smi"


def fake_runs(root: Path, count: int, *, done: bool = True) -> None:
    for i in range(count):
        run_dir = root / "runs" / f"exp{i:05d}_s0" / "1"
        run_dir.mkdir(parents=True)
        (run_dir / "token").write_text(f"token{i:015d}\n")
        (run_dir / "launch.lock").mkdir()
        (run_dir / "pid").write_text("4000000\n")
        (run_dir / "start_time").write_text("123456\n")
        if done:
            (run_dir / "exit_code").write_text("0\n")
        (run_dir / "stdout.log").write_text("".join(f"log line {n}\n" for n in range(100)))


def test_steady_state_probe_is_one_command(backend: Backend) -> None:
    async def scenario() -> list[TargetObservation]:
        runner = await backend.runner()
        return [await runner.probe() for _ in range(3)]

    first, second, third = run(scenario())
    assert first.commands == 2  # probe missing -> put -> install and probe
    assert second.commands == third.commands == 1
    assert first.reachable and first.runs == {} and first.gpus is None
    assert first.root == str(backend.root) and first.host == os.uname().nodename
    assert first.free_disk_gb is not None and first.free_disk_gb > 0
    assert (backend.root / ".reconciler" / probe_mod.probe_name()).is_file()


def test_compact_records_for_done_runs_details_on_request(backend: Backend) -> None:
    fake_runs(backend.make_root(), 3)
    (backend.root / "runs" / "exp00001_s0" / "1" / "status.json").write_text("{not json")
    (backend.root / "runs" / "exp00002_s0" / "1" / "exit_code").unlink()  # unfinished, process gone
    (backend.root / "runs" / "junk" / "not-a-number").mkdir(parents=True)

    async def scenario() -> TargetObservation:
        runner = await backend.runner()
        return await runner.probe(want=[("exp00001_s0", 1)])

    obs = run(scenario())
    assert sorted(obs.runs) == [("exp00000_s0", 1), ("exp00001_s0", 1), ("exp00002_s0", 1)]
    plain, wanted, unfinished = (obs.runs[k] for k in sorted(obs.runs))
    assert plain.token == "token000000000000000" and plain.launched and plain.exit_code == 0
    assert plain.pid is None and plain.log_tail == () and plain.age is not None
    assert wanted.exit_code == 0 and wanted.pid == 4000000 and wanted.sidecar is None
    assert wanted.log_tail == tuple(f"log line {n}" for n in range(80, 100))
    assert unfinished.exit_code is None and unfinished.alive is False and unfinished.start_time == "123456"
    assert unfinished.heartbeat_age is None and unfinished.result_size is None


def test_a_live_run_sends_its_log_tail_only_when_it_may_hold_a_fatal_line(backend: Backend) -> None:
    """Healthy live runs move no log text (the controller reads it only for fatal lines); a
    marker brings the whole tail; a run with an exit code always sends its tail (evidence)."""
    root = backend.make_root()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        state = proc_state(sleeper.pid)
        assert state is not None
        healthy = fake_run_dir(root, "healthy_s0", sleeper.pid, state[1])
        sick = fake_run_dir(root, "sick_s0", sleeper.pid, state[1])
        ended = fake_run_dir(root, "ended_s0", sleeper.pid, state[1])
        lines = [f"epoch 3 step {k}/500 loss 0.{5321 - k} INFO info 12.3 it/s" for k in range(30)]
        (healthy / "stdout.log").write_text("\n".join(lines) + "\n")
        (sick / "stdout.log").write_text("\n".join([*lines, "step 31 train_loss: NaN", "still going"]) + "\n")
        (ended / "stdout.log").write_text("\n".join(lines) + "\n")
        (ended / "exit_code").write_text("1\n")

        async def scenario() -> TargetObservation:
            return await (await backend.runner()).probe(want=[("ended_s0", 1)])

        obs = run(scenario())
    finally:
        sleeper.kill()
        sleeper.wait()
    got = {exp_id: r for (exp_id, _), r in obs.runs.items()}
    assert got["healthy_s0"].alive and got["healthy_s0"].log_tail == ()
    assert got["sick_s0"].alive and got["sick_s0"].log_tail[-2:] == ("step 31 train_loss: NaN", "still going")
    assert len(got["sick_s0"].log_tail) == 20
    assert got["ended_s0"].log_tail == tuple(lines[-20:])


def test_thousand_done_runs_stay_small(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fake_runs(root, 1000)

    async def scenario() -> tuple[TargetObservation, int]:
        transport = LocalTransport()
        runner = ShellRunner(Target("t", TargetKind.LOCAL, str(root)), transport, None, PROJECT)
        await runner.probe()
        before = transport.bytes_transferred
        obs = await runner.probe()
        return obs, transport.bytes_transferred - before

    obs, size = run(scenario())
    assert len(obs.runs) == 1000 and obs.commands == 1
    assert size < 80_000  # about 60 bytes a done run


def fake_smi(tmp_path: Path, gpus: str, apps: str, rc: int = 0) -> dict[str, str]:
    """A fake ``nvidia-smi`` that prints the golden files byte for byte; returns the env to use."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    state = tmp_path / "smi"
    state.mkdir(exist_ok=True)
    shutil.copyfile(DATA / gpus, state / "gpus.txt")
    shutil.copyfile(DATA / apps, state / "apps.txt")
    script = bin_dir / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        f"  *--query-gpu=*) cat {state}/gpus.txt ;;\n"
        f"  *--query-compute-apps=*) cat {state}/apps.txt ;;\n"
        '  *) echo "fake nvidia-smi: $*" >&2; exit 2 ;;\n'
        "esac\n"
        f"exit {rc}\n"
    )
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_gpus_from_a_fake_nvidia_smi_with_our_process_and_a_foreign_one(tmp_path: Path) -> None:
    env = fake_smi(tmp_path, "gpus_nounits.txt", "apps_empty.txt")
    root = tmp_path / "root"
    uuid = "GPU-7a1d3c9e-2b4f-8a6d-5c3e-9f1b7d2a4e86"

    async def scenario() -> tuple[TargetObservation, TargetObservation, frozenset[int], int]:
        runner = ShellRunner(Target("t", TargetKind.LOCAL, str(root)), LocalTransport(env=env), None, PROJECT)
        idle = await runner.probe()
        action = make_launch(root, 'echo $$ > "$RECONCILER_RUN_DIR/job.pid"; sleep 120', gpus=(1,))
        await runner.launch(action)
        job_pid_file = Path(action.run_dir, "job.pid")
        await poll(lambda: asyncio.sleep(0, job_pid_file.exists()), "the job's pid")
        job_pid = int(job_pid_file.read_text())
        (tmp_path / "smi" / "apps.txt").write_text(f"{job_pid}, {uuid}, 30968\n4123, {uuid}, 8192\n")
        busy = await runner.probe()
        own = frozenset(busy.gpu_groups)
        await runner.kill(kill_for(action, None, None))
        return idle, busy, own, job_pid

    idle, busy, own, job_pid = run(scenario())
    assert idle.gpus is not None and [g.index for g in idle.gpus] == [0, 1, 2] and idle.error is None
    assert idle.gpus[1].utilization_pct == 97.0 and idle.gpus[1].processes == ()
    # Processes in pid order (the job's pid may be below or above the foreign one's).
    assert busy.gpus is not None and busy.gpus[1].processes == tuple(sorted(((4123, 8192.0), (job_pid, 30968.0))))
    assert own == {job_pid}
    assert foreign_process_counts(busy.gpus, own) == {0: 0, 1: 1, 2: 0}


def test_failing_nvidia_smi_makes_a_cpu_target_with_a_note(tmp_path: Path) -> None:
    env = fake_smi(tmp_path, "driver_failed.txt", "apps_empty.txt", rc=9)

    async def scenario() -> TargetObservation:
        target = Target("t", TargetKind.LOCAL, str(tmp_path / "root"))
        return await ShellRunner(target, LocalTransport(env=env), None, PROJECT).probe()

    obs = run(scenario())
    assert obs.reachable and obs.gpus is None
    assert obs.error is not None and obs.error.startswith("nvidia-smi failed (exit 9)")
    assert "couldn't communicate with the NVIDIA driver" in obs.error


def test_relative_and_home_roots_resolve_on_the_target(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()

    async def scenario() -> list[str | None]:
        transport = LocalTransport(env={"HOME": str(home)})
        roots = []
        for root in ("proj", "~/other", "~"):
            runner = ShellRunner(Target("t", TargetKind.SSH, root), transport, None, PROJECT)
            roots.append((await runner.probe()).root)
        local = ShellRunner(Target("t", TargetKind.LOCAL, "out/root"), transport, tmp_path / "project", PROJECT)
        roots.append((await local.probe()).root)
        return roots

    assert run(scenario()) == [
        f"{home}/proj",
        f"{home}/other",
        str(home),
        str(tmp_path / "project" / "out" / "root"),
    ]
    assert (home / "proj" / ".reconciler").is_dir()


def old_python() -> str | None:
    for name in ("python3.6", "python3.7"):
        if shutil.which(name) and subprocess.run([name, "-c", "pass"], capture_output=True).returncode == 0:
            return name
    return None


@pytest.mark.skipif(old_python() is None, reason="no python3.6/3.7 on PATH")
def test_probe_runs_on_an_old_python(tmp_path: Path) -> None:
    fake_runs(tmp_path / "root", 2, done=False)
    python = old_python()
    assert python is not None

    async def scenario() -> TargetObservation:
        target = Target("t", TargetKind.LOCAL, str(tmp_path / "root"), python=python)
        return await ShellRunner(target, LocalTransport(), None, PROJECT).probe()

    obs = run(scenario())
    assert len(obs.runs) == 2 and all(len(r.log_tail) == 20 for r in obs.runs.values())


def test_probe_garbage_is_a_transport_error() -> None:
    with pytest.raises(TransportError):
        probe_mod.parse_probe("t", "Welcome to the cluster!\n")
    doc = {"v": 1, "fields": ["exp_id", "attempt"], "runs": [], "gpus": None}
    obs = probe_mod.parse_probe("t", "motd line\n" + json.dumps(doc) + "\n")
    assert obs.reachable and obs.runs == {}


def make_archive(tmp_path: Path) -> Path:
    archive = tmp_path / "code.tar"
    with tarfile.open(archive, "w") as tar:
        data = b"print('hi')\n"
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return archive


def test_ship_code_is_atomic_and_idempotent(backend: Backend, tmp_path: Path) -> None:
    archive = make_archive(tmp_path)
    backend.make_root()
    stale = backend.root / "code" / "feed01"
    stale.mkdir(parents=True)
    (stale / "half-written").write_text("")
    (backend.root / "code").chmod(0o777)
    stale.chmod(0o777)

    async def scenario() -> tuple[int, int]:
        runner = await backend.runner()
        await asyncio.gather(runner.ship_code("abc123", archive), runner.ship_code("abc123", archive))
        await runner.ship_code("feed01", archive)
        before = runner.transport.commands
        await runner.ship_code("abc123", archive)
        return runner.transport.commands - before, before

    again, _ = run(scenario())
    assert again == 1
    code = backend.root / "code"
    assert (code / "abc123" / "train.py").read_text() == "print('hi')\n"
    assert (code / "abc123" / ".complete").is_file()
    assert sorted(p.name for p in (code / "abc123").iterdir()) == [".complete", "train.py"]
    assert sorted(p.name for p in (code / "feed01").iterdir()) == [".complete", "train.py"]
    assert sorted(p.name for p in code.iterdir()) == ["abc123", "feed01"]  # no temp or tar left


def test_collect_copies_the_result_atomically(backend: Backend, tmp_path: Path) -> None:
    backend.make_root()
    remote = backend.root / "result.csv"
    remote.write_text("exp_id,value\nA,1\n")
    dest = tmp_path / "project" / "experiments" / "results" / "A.csv"

    async def scenario() -> None:
        runner = await backend.runner()
        action = Collect(exp_id="A", target="t", attempt=1, remote_path=str(remote), local_path=str(dest))
        await runner.collect(action, dest)
        missing = Collect(exp_id="A", target="t", attempt=1, remote_path=str(remote) + ".no", local_path="x")
        with pytest.raises(RemoteFileMissing):
            await runner.collect(missing, dest)

    run(scenario())
    assert dest.read_text() == "exp_id,value\nA,1\n"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["A.csv"]
