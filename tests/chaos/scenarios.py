"""Scenarios of the chaos suite: what a seed and an index make (experiments, targets, fault steps).

``generate(seed, index)`` is deterministic. Every ``(seed, index)`` picks its kind from its own
random streams, so a share changes only the scenarios of its kind: PBS (``CHAOS_BATCH``,
``tests.chaos.batch``), real OpenSSH targets with fake GPUs (``CHAOS_SSH``), local targets with
fake GPUs (``CHAOS_GPU``), else two plain local targets. ``harness`` plays them.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

from reconciler.crashpoints import ARCHIVE_POINTS, POINTS
from tests.chaos import batch, targets

DEFAULT_SEED = 20261126
LOCAL_FAULTS = ("crash", "kill", "drop", "slow", "down", "commit", "disk_full", "corrupt", "concurrent")
SSH_FAULTS = ("crash", "kill", "down", "commit", "disk_full", "corrupt")
"""Faults of the SSH scenarios (``drop``, ``slow`` and ``concurrent`` go through the local fake ``sh``)."""
FAULTS = (*LOCAL_FAULTS, *batch.BATCH_FAULTS)
GPU_SHARE_ENV, GPU_SHARE = "CHAOS_GPU", 0.2
SSH_SHARE_ENV, SSH_SHARE = "CHAOS_SSH", 0.1
MULTI_HIT = ("after_run_dir", "after_launch", "after_collect", "after_kill")
"""Points a pass can reach more than once (one per action): ``<point>:2`` dies at the second."""
COMMAND_TIMEOUT = 3
TARGETS = ("ta", "tb")


@dataclass
class Step:
    kind: str
    arg: str = ""

    def __str__(self) -> str:
        return f"{self.kind}({self.arg})" if self.arg else self.kind


@dataclass
class Scenario:
    seed: int
    index: int
    experiments: list[dict[str, Any]]
    steps: list[Step]
    batch: bool = False
    """PBS targets through the shim (``tests.chaos.batch``)."""
    gpu: bool = False
    """Targets with fake GPUs (``tests.chaos.gpus``): invariant (a) is checked."""
    ssh: bool = False
    """Real OpenSSH targets (``tests.chaos.targets``), with fake GPUs."""
    max_runs_per_gpu: int = 1
    warmup: float = 0.0
    """Seconds before a job's memory shows in the fake ``nvidia-smi``."""
    foreign: tuple[int, ...] = ()
    """Foreign load (MiB) on GPU 1 of each host."""
    name: str = ""
    """A named scenario's name (``tests.chaos.named``): its replay is ``--named <name>``."""

    @property
    def kind(self) -> str:
        return "pbs" if self.batch else "ssh" if self.ssh else "gpu" if self.gpu else "local"

    def describe(self) -> str:
        def one(e: dict[str, Any]) -> str:
            vram = f"/{e['vram']}G" if "vram" in e else ""
            return f"{e['id']}x{len(e['seeds'])}{vram}@{'/'.join(e['targets'])}"

        exps = ", ".join(one(e) for e in self.experiments)
        kind = {"pbs": " pbs", "local": ""}.get(self.kind, f" {self.kind} mrpg={self.max_runs_per_gpu}")
        if self.gpu and self.warmup:
            kind += f" warmup={self.warmup:g}"
        if self.gpu and any(self.foreign):
            kind += f" foreign={'/'.join(map(str, self.foreign))}"
        head = f"named={self.name}" if self.name else f"seed={self.seed} index={self.index}"
        return f"{head}{kind} [{exps}] steps: " + " ".join(map(str, self.steps))


def share(name: str, default: float) -> float:
    return float(os.environ.get(name, str(default)))


def is_ssh(seed: int, index: int) -> bool:
    """Seed-stable, own random stream (like ``batch.is_batch``); batch scenarios stay batch."""
    return random.Random(f"{seed}:{index}:ssh").random() < share(SSH_SHARE_ENV, SSH_SHARE)


def is_gpu(seed: int, index: int) -> bool:
    return random.Random(f"{seed}:{index}:gpu").random() < share(GPU_SHARE_ENV, GPU_SHARE)


def generate(seed: int, index: int) -> Scenario:
    if batch.is_batch(seed, index):
        return generate_batch(seed, index)
    if is_ssh(seed, index):
        return generate_gpu(seed, index, ssh=True)
    if is_gpu(seed, index):
        return generate_gpu(seed, index, ssh=False)
    rng = random.Random(f"{seed}:{index}")
    experiments = []
    for i in range(rng.randint(2, 3)):
        experiments.append(
            {
                "id": f"e{i}",
                "seeds": list(range(rng.randint(1, 2))),
                "sleep": rng.choice([0.1, 0.5, 1.5]),
                "targets": rng.choice([["ta"], ["tb"], ["ta", "tb"]]),
            }
        )
    steps: list[Step] = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice((*LOCAL_FAULTS, "crash", "crash"))  # crashes weigh 3: every point, often
        if kind == "crash":
            point = rng.choice((*POINTS, *ARCHIVE_POINTS))
            arg = point + (rng.choice(["", "", ":2"]) if point in MULTI_HIT else "")
        else:
            arg = _fault_arg(rng, kind, TARGETS)
        # A fault may come before the first pass or after a few normal ones.
        steps.extend(Step("pass") for _ in range(rng.choice([0, 0, 1, 2])))
        steps.append(Step(kind, arg))
    return Scenario(seed, index, experiments, steps)


def generate_batch(seed: int, index: int) -> Scenario:
    """A scenario on PBS (and local) targets, with the batch faults in the mix (own random stream)."""
    rng = random.Random(f"{seed}:{index}:pbs")
    experiments: list[dict[str, Any]] = []
    for i in range(rng.randint(2, 3)):
        experiments.append(
            {
                "id": f"e{i}",
                "seeds": list(range(rng.randint(1, 2))),
                "sleep": rng.choice([0.1, 0.5, 1.5, 3.0]),
                "targets": list(rng.choice(batch.EXPERIMENT_TARGETS)),
            }
        )
    exp_ids = [e["id"] for e in experiments]
    steps: list[Step] = []
    for _ in range(rng.randint(1, 3)):
        kind = batch.fault_kind(rng, LOCAL_FAULTS)
        if kind == "crash":
            arg = batch.crash_point(rng, POINTS, MULTI_HIT)
        elif kind in batch.BATCH_FAULTS:
            arg = batch.fault_arg(rng, kind, exp_ids)
        else:
            arg = _fault_arg(rng, kind, batch.BATCH_TARGETS)
        steps.extend(Step("pass") for _ in range(rng.choice([0, 0, 1, 2])))
        steps.append(Step(kind, arg))
    return Scenario(seed, index, experiments, steps, batch=True)


def generate_gpu(seed: int, index: int, *, ssh: bool) -> Scenario:
    """A scenario on two targets with two fake GPUs each, placement contended: 3-6 runs of
    20-40 GB (x 1.2) over 4 GPUs of 80 GB, ``max_runs_per_gpu`` 1 or 2, sometimes a foreign load."""
    rng = random.Random(f"{seed}:{index}:{'ssh' if ssh else 'gpu'}")
    names = targets.SSH_TARGETS if ssh else targets.GPU_TARGETS
    experiments: list[dict[str, Any]] = []
    for i in range(rng.randint(2, 3)):
        experiments.append(
            {
                "id": f"e{i}",
                "seeds": list(range(rng.randint(1, 3))),
                "sleep": rng.choice([0.5, 1.5, 3.0]),
                "targets": rng.choice([[names[0]], [names[1]], list(names)]),
                "vram": rng.choice([20, 30, 40]),
            }
        )
    mrpg = rng.choice([1, 2])
    foreign = tuple(rng.choice([0, 0, 30000]) for _ in names)
    warmup = rng.choice([0.0, 1.0, 3.0])
    faults = SSH_FAULTS if ssh else LOCAL_FAULTS
    steps: list[Step] = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice((*faults, "crash", "kill"))
        if kind == "crash":
            point = rng.choice((*POINTS, "after_apply", "after_launch"))  # where item 1 was seen
            arg = point + (rng.choice(["", "", ":2"]) if point in MULTI_HIT else "")
        else:
            arg = _fault_arg(rng, kind, names)
        steps.extend(Step("pass") for _ in range(rng.choice([0, 0, 1, 2])))
        steps.append(Step(kind, arg))
    return Scenario(
        seed, index, experiments, steps, gpu=True, ssh=ssh, max_runs_per_gpu=mrpg, warmup=warmup, foreign=foreign
    )


def _fault_arg(rng: random.Random, kind: str, targets: tuple[str, ...]) -> str:
    """The argument of a fault step of every scenario but a crash."""
    if kind == "kill":
        return rng.choice([f"{rng.uniform(0.05, 1.0):.2f}", f"{rng.uniform(0.05, 1.0):.2f}", "write", "launch"])
    if kind == "drop":
        return f"{rng.choice(['before', 'after'])}:{rng.randint(1, 6)}"
    if kind == "slow":
        return f"{rng.choice(targets)}:{rng.choice([0.5, COMMAND_TIMEOUT + 1.0])}"
    if kind == "down":
        return f"{rng.choice(targets)}:{rng.randint(1, 2)}"
    if kind == "commit":
        return f"{rng.choice(['priority', 'seed', 'experiment', 'command'])}:{rng.choice([0.0, 0.3, 0.8])}"
    if kind == "disk_full":
        return rng.choice(["dispatch/state.json", "progress/lab.log"])
    if kind == "corrupt":
        return rng.choice(["truncate", "garbage", "delete", "empty", "cache"])
    return ""
