"""``reconcile probe-vram``: measure an experiment's GPU memory on a target (issue 18, item 1).

The experiment runs briefly, as attempt 0 of its run dirs (``<root>/runs/<EXP_ID>/0``: no attempt
of the state is ever numbered 0, and while it runs every pass counts it as a live run of ours),
on the GPU of the target with the most free memory, with ``RECONCILER_MAX_STEPS`` set (the
runtime's ``--max-steps``; a script that ignores it is stopped at the time limit) and wandb off.
Every ``interval`` seconds the probe samples what ``nvidia-smi`` lists for the run's process group
and the job's own peak (``gpu_peak_mb`` of its sidecar: PyTorch's ``max_memory_allocated``). The
peak, with its evidence, goes to ``experiments/vram.json`` (``model.vram``) and is committed;
placement then uses it. The project lock is held only to read the project and to write and commit
the measurement, never while the run goes on: passes continue meanwhile.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from reconciler.backends.base import Runner
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.gitstore.writer import commit_status
from reconciler.model.actions import Fatal, Kill, Launch
from reconciler.model.config import Target
from reconciler.model.desired import DesiredState
from reconciler.model.ids import code_dir, launch_token, run_dir
from reconciler.model.observed import GpuObservation, TargetObservation
from reconciler.model.spec import ExperimentSpec
from reconciler.model.vram import Measurement, command_hash, peak_gb
from reconciler.plan.launchenv import launch_env
from reconciler.plan.leases import lease_request
from reconciler.plan.place import attributed_mb, usable_gpu
from reconciler.runtime.bundle import append_to_tar as append_runtime_bundle
from reconciler.runtime.env import MAX_STEPS_ENV
from reconciler.session import open_project
from reconciler.statestore import read_vram, write_vram
from reconciler.targets import open_runners

PROBE_ATTEMPT = 0


@dataclass(frozen=True)
class Limits:
    """How long the measured run goes: ``steps`` (``RECONCILER_MAX_STEPS``), ``timeout`` seconds
    at most (then it is stopped), sampled every ``interval`` seconds."""

    steps: int = 20
    timeout: float = 300.0
    interval: float = 1.0


@dataclass(frozen=True)
class Probed:
    """What one ``probe-vram`` found: a measurement, or why there is none."""

    exp_id: str
    target: str
    measurement: Measurement | None = None
    why: str = ""
    commit: str | None = None
    """The commit that recorded the measurement."""
    log_tail: tuple[str, ...] = ()

    @property
    def line(self) -> str:
        m = self.measurement
        if m is None:
            return f"probe-vram {self.exp_id} on {self.target}: nothing measured: {self.why}"
        smi = f"nvidia-smi {m.smi_peak_mb / 1024:.2f} GB" if m.smi_peak_mb is not None else "nvidia-smi -"
        torch = f", torch {m.torch_peak_mb / 1024:.2f} GB" if m.torch_peak_mb is not None else ""
        return (
            f"probe-vram {self.exp_id} on {self.target} ({m.gpu_model}): peak {m.peak_gb:g} GB"
            f" ({smi} over {m.samples} samples{torch}) in {m.seconds:.0f} s"
        )


def find_spec(desired: DesiredState, exp: str) -> ExperimentSpec:
    specs = desired.by_id()
    if exp in specs:
        return specs[exp]
    alike = sorted((s for s in desired.experiments if s.base_id == exp), key=lambda s: s.id)
    if not alike:
        raise ConfigError(f"no experiment {exp!r} in the committed dispatch files")
    return alike[0]


def candidates(desired: DesiredState, spec: ExperimentSpec, target: str | None) -> list[Target]:
    config = desired.config
    if target is not None:
        if target not in config.target_names:
            raise ConfigError(
                f"no target {target!r} in config/reconciler.yaml (targets: {', '.join(config.target_names)})"
            )
        chosen = config.target(target)
        if chosen.kind.batch:
            raise ConfigError(f"target {target!r} is a batch cluster: probe-vram runs on process targets (ssh, local)")
        return [chosen]
    names = spec.targets or config.target_names
    return [config.target(n) for n in names if not config.target(n).kind.batch]


def probe_vram(
    project_dir: Path,
    exp: str,
    target: str | None = None,
    steps: int = 20,
    timeout: float = 300.0,
    interval: float = 1.0,
    say: Callable[[str], None] = lambda _: None,
) -> Probed:
    """Measure ``exp`` (an expanded id, or a base id: its first seed) and record the result."""
    with open_project(project_dir) as session:
        project_dir, repo = session.project_dir, session.repo
        _, desired = session.desired()
        spec = find_spec(desired, exp)
        targets = candidates(desired, spec, target)
        commit = desired.revision or repo.head_sha()
        with tempfile.TemporaryDirectory(prefix="reconciler-vram-") as scratch:
            archive = Path(scratch) / f"{commit}.tar"
            repo.archive(commit, archive)
            append_runtime_bundle(archive)  # the job imports reconciler.runtime, as in a pass
            limits = Limits(steps, timeout, interval)
            probed = asyncio.run(_measure(project_dir, desired, spec, targets, commit, archive, limits, say))
    if probed.measurement is None:
        return probed
    with open_project(project_dir) as session:
        book = read_vram(session.project_dir).add(probed.measurement)
        path = write_vram(session.project_dir, book)
        m = probed.measurement
        sha = commit_status(
            session.repo,
            [path],
            subject=f"reconcile: probe-vram {m.exp_id}: {m.peak_gb:g} GB on {m.target} ({m.gpu_model})",
            body=probed.line,
            trailers={"Desired-State": commit},
            settings=desired.config.git,
        )
    return Probed(probed.exp_id, probed.target, m, commit=sha, log_tail=probed.log_tail)


async def _measure(
    project_dir: Path,
    desired: DesiredState,
    spec: ExperimentSpec,
    targets: list[Target],
    commit: str,
    archive: Path,
    limits: Limits,
    say: Callable[[str], None],
) -> Probed:
    runners = open_runners(desired.config, project_dir)
    try:
        reasons = []
        for target in targets:
            runner = runners.by_name[target.name]
            seen = await runner.probe(want=[(spec.id, PROBE_ATTEMPT)])
            if not seen.reachable:
                reasons.append(f"{target.name} unreachable ({seen.error})")
                continue
            if seen.gpus is None:
                reasons.append(f"{target.name} has no GPU (no nvidia-smi answered)")
                continue
            gpu = _free_gpu(seen.gpus, target)
            if gpu is None:
                reasons.append(f"{target.name}: every GPU is blacklisted")
                continue
            earlier = seen.run(spec.id, PROBE_ATTEMPT)
            if earlier is not None and earlier.alive:
                raise ConfigError(f"a probe-vram of {spec.id} is still running on {target.name} (pid {earlier.pid})")
            return await _run(runner, desired, spec, target, seen, gpu, commit, archive, limits, say)
        what = "; ".join(reasons) or "no process target (ssh, local) to run it on"
        return Probed(spec.id, targets[0].name if len(targets) == 1 else "-", why=what)
    finally:
        await runners.close()


def _free_gpu(gpus: tuple[GpuObservation, ...], target: Target) -> GpuObservation | None:
    usable = [g for g in gpus if usable_gpu(g, target)]
    return max(usable, key=lambda g: (g.memory_free_mb or 0.0, -g.index), default=None)


async def _run(
    runner: Runner,
    desired: DesiredState,
    spec: ExperimentSpec,
    target: Target,
    seen: TargetObservation,
    gpu: GpuObservation,
    commit: str,
    archive: Path,
    limits: Limits,
    say: Callable[[str], None],
) -> Probed:
    steps, timeout, interval = limits.steps, limits.timeout, limits.interval
    root = seen.root or target.root
    rdir = run_dir(root, spec.id, PROBE_ATTEMPT)
    await runner.remove_tree(rdir)  # an earlier probe's, ended
    await runner.ship_code(commit, archive)
    scratch = f"{root.rstrip('/')}/.reconciler/vram/{spec.id}"
    env = [(k, v) for k, v in launch_env(spec, (gpu.index,), True, desired.config) if k != "WANDB_MODE"]
    env += [(MAX_STEPS_ENV, str(steps)), ("WANDB_MODE", "disabled")]
    project = desired.config.project
    lease = lease_request(target, seen, project, (gpu.index,), spec.vram_gb, spec.id, PROBE_ATTEMPT)
    action = Launch(
        exp_id=spec.id,
        target=target.name,
        attempt=PROBE_ATTEMPT,
        command=spec.render(spec.command, f"{scratch}/checkpoints", result_file=f"{rdir}/{spec.result_path}"),
        run_dir=rdir,
        token=launch_token(desired.config.project, spec.id, PROBE_ATTEMPT),
        code_dir=code_dir(root, commit),
        commit=commit,
        result_file=spec.result_path,
        checkpoint_dir=f"{scratch}/checkpoints",
        gpus=(gpu.index,),
        env=tuple(env),
        vram_gb=spec.vram_gb,
        lease=lease,
    )
    started = await runner.launch(action)
    say(f"probe-vram {spec.id}: running on {target.name} GPU {gpu.index} (pid {started.pid}), {steps} steps at most")
    began = time.monotonic()
    smi: list[float] = []
    torch_peak: float | None = None
    tail: tuple[str, ...] = ()
    while True:
        await asyncio.sleep(interval)
        obs = await runner.probe(want=[(spec.id, PROBE_ATTEMPT)])
        run = obs.run(spec.id, PROBE_ATTEMPT)
        if obs.reachable and obs.gpus is not None:
            smi.append(attributed_mb(obs, gpu.index, started.pid))
        if run is not None and run.sidecar:
            reported = run.sidecar.get("gpu_peak_mb")
            if isinstance(reported, (int, float)) and not isinstance(reported, bool) and reported > 0:
                torch_peak = max(torch_peak or 0.0, float(reported))
        ended = run is not None and (run.exit_code is not None or not run.alive)
        if run is not None and run.log_tail:
            tail = run.log_tail
        if ended or time.monotonic() - began > timeout:
            break
    if not ended:
        stop = Kill(spec.id, target.name, PROBE_ATTEMPT, rdir, started.pid, started.start_time, reason=Fatal("timeout"))
        await runner.kill(stop)
        say(f"probe-vram {spec.id}: stopped at the {timeout:.0f} s limit")
    seconds = time.monotonic() - began
    peak = peak_gb(smi, torch_peak)
    if peak <= 0:
        why = f"the run showed no GPU memory in {len(smi)} samples"
        if run is not None and run.exit_code not in (None, 0):
            why = f"the run failed (exit {run.exit_code}) before it used the GPU"
        return Probed(spec.id, target.name, why=why, log_tail=tail)
    measurement = Measurement(
        exp_id=spec.id,
        base_id=spec.base_id,
        command_hash=command_hash(spec.command),
        commit=commit,
        target=target.name,
        gpu_model=gpu.name,
        peak_gb=peak,
        measured_at=datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        method=spec.method,
        dataset=spec.dataset,
        smi_peak_mb=max(smi) if smi else None,
        torch_peak_mb=torch_peak,
        samples=len(smi),
        seconds=round(seconds, 1),
        steps=steps,
    )
    return Probed(spec.id, target.name, measurement, log_tail=tail)


__all__ = ["Probed", "ReconcilerError", "probe_vram"]
