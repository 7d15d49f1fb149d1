"""Properties of GPU placement in the pure planner (``make_plan``), over random worlds.

A world: 1-4 targets, each with 0-6 GPUs (random free memory, models, index and model blacklists,
``max_runs_per_gpu``, ``vram_factor``, ``max_runs``), some unreachable or unobserved, some CPU-only;
and up to 14 pending experiments (random ``vram_gb``, ``gpus``, eligible targets, priority). The
checks replay the launches in placement order (stage, priority, id) against the observation:

* a launch lands on a reachable, eligible target below its ``max_runs``, on distinct GPUs that exist,
  are not blacklisted (index, or model substring in any case), are below ``max_runs_per_gpu``, and
  have ``free - reservations of the runs placed before it >= vram_factor x vram_gb x 1024``;
* the target is the least loaded one (then by name) that could take it, its GPUs the ones with the
  most free memory (then by index) — as ``reconciler.plan.place`` documents;
* an experiment left pending fitted nowhere at its turn, and its reason names every eligible target;
* the same inputs give an identical plan, also with the experiments, targets and observations in
  another order.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.model.actions import CheckEnv, Launch
from reconciler.model.config import Config, GpuPolicy, Policies, Target, TargetKind
from reconciler.model.desired import DesiredState
from reconciler.model.env import ENV_FAILED, ENV_READY, EnvVerdict, env_hash
from reconciler.model.ids import launch_token, run_dir
from reconciler.model.observed import GpuObservation, ObservedState, RunObservation, TargetObservation
from reconciler.model.spec import ExperimentSpec
from reconciler.model.status import Attempt, StateFile, Status, StatusEntry
from reconciler.plan import make_plan
from reconciler.plan import place as place_mod
from reconciler.plan.context import Context
from reconciler.plan.core import Plan
from reconciler.plan.place import Placement

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
REVISION = "c0ffee0000000000000000000000000000000000"
PROJECT = "props"
NAMES = ("alpha", "beta", "gamma", "delta")
MODELS = (
    "NVIDIA H100 80GB HBM3",
    "NVIDIA A100-SXM4-40GB",
    "NVIDIA RTX A6000",
    "NVIDIA GeForce RTX 3090",
    "NVIDIA L40S",
)
MODEL_PATTERNS = ("RTX A6000", "rtx a6000", "A100", "3090", "l40s")
EPS = 1e-6


@dataclass(frozen=True)
class World:
    desired: DesiredState
    observed: ObservedState
    running: tuple[tuple[str, str, tuple[int, ...]], ...] = ()
    """(exp_id, target, gpus) of the runs already going (recorded ``running``, alive if observed)."""

    @property
    def recorded(self) -> StateFile:
        specs = self.desired.by_id()
        entries = []
        for exp_id, name, gpus in self.running:
            attempt = Attempt(
                1,
                name,
                specs[exp_id].command,
                run_dir(f"/r/{name}", exp_id, 1),
                launch_token(PROJECT, exp_id, 1),
                host=name,
                gpus=gpus,
                pid=1000,
                start_time="7",
            )
            entries.append(StatusEntry(id=exp_id, status=Status.RUNNING, command=specs[exp_id].command,
                                       target=name, attempt=1, attempts=(attempt,), pid=1000,
                                       spec_hash=specs[exp_id].spec_hash))  # fmt: skip
        return StateFile(project=PROJECT, entries=tuple(entries))

    @property
    def targets(self) -> dict[str, Target]:
        return {t.name: t for t in self.desired.config.targets}


@st.composite
def gpu_lists(draw: st.DrawFn) -> tuple[GpuObservation, ...]:
    count = draw(st.integers(0, 6))
    indices = draw(st.permutations(range(8)))[:count]  # distinct, not always 0..n-1, any order
    gpus = []
    for index in indices:
        total = draw(st.sampled_from((24576.0, 40960.0, 49140.0, 81559.0)))
        free = draw(st.one_of(st.floats(0, total, allow_nan=False), st.sampled_from((0.0, total, 10240.0, 9830.4))))
        known = draw(st.sampled_from(("free", "free", "free", "total-used", "unknown")))
        gpus.append(
            GpuObservation(
                index=index,
                uuid=f"GPU-{index}",
                name=draw(st.sampled_from(MODELS)),
                memory_total_mb=total if known != "unknown" else None,
                memory_used_mb=total - free if known != "unknown" else None,
                memory_free_mb=free if known == "free" else None,
                utilization_pct=0.0,
            )
        )
    return tuple(gpus)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    names = NAMES[: draw(st.integers(1, 4))]
    targets = []
    observed: dict[str, TargetObservation] = {}
    for name in names:
        policy = GpuPolicy(
            blacklist=tuple(draw(st.sets(st.integers(0, 7), max_size=3))),
            blacklist_models=tuple(draw(st.sets(st.sampled_from(MODEL_PATTERNS), max_size=2))),
            max_runs_per_gpu=draw(st.integers(1, 3)),
            vram_factor=draw(st.sampled_from((1.0, 1.2, 1.5))),
        )
        max_runs = draw(st.one_of(st.none(), st.integers(1, 6)))
        targets.append(Target(name, TargetKind.SSH, f"/r/{name}", gpus=policy, max_runs=max_runs))
        seen = draw(st.sampled_from(("gpus", "gpus", "gpus", "cpu", "unreachable", "unobserved")))
        if seen == "unobserved":
            continue
        observed[name] = TargetObservation(
            target=name,
            reachable=seen != "unreachable",
            gpus=draw(gpu_lists()) if seen == "gpus" else None,
            host=name,
            root=f"/r/{name}",
        )
    specs = []
    for n in range(draw(st.integers(0, 14))):
        exp_id = f"e{n:02d}"
        specs.append(
            ExperimentSpec(
                id=exp_id,
                base_id=exp_id,
                command=f"python3 train.py --out {{result_file}} --exp {exp_id}",
                source=f"dispatch/x.yaml:{n + 1}",
                priority=draw(st.integers(1, 4)),
                vram_gb=draw(st.one_of(st.none(), st.sampled_from((1.0, 8.0, 12.5, 24.0, 40.0, 70.0)))),
                gpus=draw(st.sampled_from((None, None, None, 0, 1, 2, 3))),
                targets=tuple(draw(st.sets(st.sampled_from(names), max_size=len(names)))),
            )
        )
    running = []
    for spec in specs[: draw(st.integers(0, 3))]:
        name = draw(st.sampled_from(names))
        tobs = observed.get(name)
        indices = sorted(g.index for g in (tobs.gpus or ())) if tobs is not None else []
        gpus = tuple(sorted(draw(st.sets(st.sampled_from(indices), max_size=2)))) if indices else ()
        running.append((spec.id, name, gpus))
        if tobs is not None and tobs.reachable:
            run = RunObservation(spec.id, 1, launch_token(PROJECT, spec.id, 1), launched=True, pid=1000,
                                 start_time="7", alive=True, heartbeat_age=1.0, age=60.0)  # fmt: skip
            observed[name] = replace(tobs, runs={**tobs.runs, (spec.id, 1): run})
    desired = DesiredState(
        config=Config(project=PROJECT, targets=tuple(targets), policies=Policies()),
        experiments=tuple(specs),
        revision=REVISION,
    )
    return World(desired, ObservedState(observed), tuple(running))


def ready(world: World) -> dict[str, EnvVerdict]:
    """A fresh ENV_READY verdict for every target (so no environment check stands in the way)."""
    return {name: verdict(target, ENV_READY) for name, target in world.targets.items()}


def verdict(target: Target, status: str) -> EnvVerdict:
    return EnvVerdict(
        target=target.name,
        status=status,
        checked_commit=REVISION,
        checked_at=NOW.isoformat(timespec="seconds"),
        env_hash=env_hash(target),
        evidence=("ModuleNotFoundError: No module named 'torch'",) if status == ENV_FAILED else (),
    )


def plan(world: World, env: dict[str, EnvVerdict] | None = None) -> Plan:
    return make_plan(world.desired, world.recorded, world.observed, NOW, env=ready(world) if env is None else env)


def free_mb(gpu: GpuObservation) -> float:
    if gpu.memory_free_mb is not None:
        return gpu.memory_free_mb
    if gpu.memory_total_mb is not None and gpu.memory_used_mb is not None:
        return gpu.memory_total_mb - gpu.memory_used_mb
    return 0.0


def blacklisted(gpu: GpuObservation, target: Target) -> bool:
    return gpu.index in target.gpus.blacklist or any(
        pattern.lower() in gpu.name.lower() for pattern in target.gpus.blacklist_models
    )


class Replay:
    """The launches so far in placement order, and what each target and GPU has left."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.on_target: Counter[str] = Counter()
        self.on_gpu: Counter[tuple[str, int]] = Counter()
        self.reserved: defaultdict[tuple[str, int], float] = defaultdict(float)
        specs = world.desired.by_id()
        for exp_id, name, gpus in world.running:
            # Their slots count, and so does their estimate with its margin (vram_factor): nvidia-smi
            # lists no process of theirs in these worlds, so none of it shows in "used" yet.
            self.on_target[name] += 1
            for index in gpus:
                self.on_gpu[(name, index)] += 1
                factor = self.world.targets[name].gpus.vram_factor
                self.reserved[(name, index)] += (specs[exp_id].vram_gb or 0.0) * 1024.0 * factor

    def left(self, name: str, gpu: GpuObservation) -> float:
        return free_mb(gpu) - self.reserved[(name, gpu.index)]

    def room(self, spec: ExperimentSpec, name: str) -> list[GpuObservation] | None:
        """GPUs of target ``name`` that could take ``spec`` now (best first), or ``None`` when the
        target as a whole cannot (unreachable, full, CPU-only and GPUs needed)."""
        target = self.world.targets[name]
        tobs = self.world.observed.target(name)
        if tobs is None or not tobs.reachable:
            return None
        if target.max_runs is not None and self.on_target[name] >= target.max_runs:
            return None
        if tobs.gpus is None:
            return None if self.need(spec, name) else []
        need_mb = target.gpus.vram_factor * (spec.vram_gb or 0.0) * 1024.0
        fits = [
            g
            for g in tobs.gpus
            if not blacklisted(g, target)
            and self.on_gpu[(name, g.index)] < target.gpus.max_runs_per_gpu
            and self.left(name, g) >= need_mb - EPS
        ]
        return sorted(fits, key=lambda g: (-self.left(name, g), g.index))

    def need(self, spec: ExperimentSpec, name: str) -> int:
        """GPUs the spec needs there: its count; else one when it gives a VRAM estimate or the
        target has GPUs; else none."""
        if spec.gpus is not None:
            return spec.gpus
        tobs = self.world.observed.target(name)
        return 1 if spec.vram_gb or (tobs is not None and tobs.gpus is not None) else 0

    def can_take(self, spec: ExperimentSpec, name: str) -> bool:
        room = self.room(spec, name)
        return room is not None and len(room) >= self.need(spec, name)

    def add(self, spec: ExperimentSpec, launch: Launch) -> None:
        self.on_target[launch.target] += 1
        for index in launch.gpus:
            self.on_gpu[(launch.target, index)] += 1
            factor = self.world.targets[launch.target].gpus.vram_factor
            self.reserved[(launch.target, index)] += (spec.vram_gb or 0.0) * 1024.0 * factor


def check_placement(world: World, result: Plan) -> None:
    launches = {a.exp_id: a for a in result.actions if isinstance(a, Launch)}
    entries = {e.id: e for e in result.state.entries}
    replay = Replay(world)
    running = {exp_id for exp_id, _, _ in world.running}
    assert not running & set(launches), "a running experiment was launched again"
    pending = [s for s in world.desired.experiments if s.id not in running]
    for spec in sorted(pending, key=lambda s: (s.stage, s.priority, s.id)):
        eligible = sorted(spec.targets or world.targets, key=lambda n: (replay.on_target[n], n))
        launch = launches.get(spec.id)
        if launch is None:
            reason = entries[spec.id].waiting_reason
            assert entries[spec.id].status is Status.PENDING
            assert reason, spec.id
            for name in eligible:
                assert name in reason, (spec.id, reason)
                assert not replay.can_take(spec, name), (spec.id, name, reason)
            continue
        name = launch.target
        assert name in eligible, (spec.id, name, spec.targets)
        target = world.targets[name]
        tobs = world.observed.target(name)
        assert tobs is not None and tobs.reachable, (spec.id, name)
        if target.max_runs is not None:
            assert replay.on_target[name] < target.max_runs, (spec.id, name)
        # Least loaded first: no target ahead of it in (load, name) order could have taken it.
        for other in eligible[: eligible.index(name)]:
            assert not replay.can_take(spec, other), (spec.id, name, other)
        assert len(launch.gpus) == replay.need(spec, name), (spec.id, launch.gpus, spec.gpus)
        assert len(set(launch.gpus)) == len(launch.gpus)
        room = replay.room(spec, name)
        assert room is not None
        by_index = {g.index: g for g in tobs.gpus or ()}
        need_mb = target.gpus.vram_factor * (spec.vram_gb or 0.0) * 1024.0
        for index in launch.gpus:
            gpu = by_index[index]
            assert not blacklisted(gpu, target), (spec.id, name, gpu)
            assert replay.on_gpu[(name, index)] < target.gpus.max_runs_per_gpu, (spec.id, name, index)
            assert replay.left(name, gpu) >= need_mb - EPS, (spec.id, name, index, replay.left(name, gpu), need_mb)
        # Most free memory first (then by index).
        best = sorted(g.index for g in room[: len(launch.gpus)])
        assert list(launch.gpus) == best, (spec.id, name, launch.gpus, [(g.index, replay.left(name, g)) for g in room])
        replay.add(spec, launch)
    # Totals, running runs included: a launch never takes a GPU or a target over its limit.
    used = {(a.target, g) for a in launches.values() for g in a.gpus}
    for (name, index), count in replay.on_gpu.items():
        assert (name, index) not in used or count <= world.targets[name].gpus.max_runs_per_gpu, (name, index)
    for name, count in replay.on_target.items():
        limit = world.targets[name].max_runs
        assert limit is None or name not in {a.target for a in launches.values()} or count <= limit, name


SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEWER = settings(SETTINGS, max_examples=50)


@SETTINGS
@given(worlds())
def test_placement_never_overcommits_and_misses_nothing(world: World) -> None:
    check_placement(world, plan(world))


@FEWER
@given(worlds(), st.randoms(use_true_random=False))
def test_the_plan_is_the_same_for_the_same_inputs_in_any_order(world: World, rnd: random.Random) -> None:
    first = plan(world)
    again = plan(world)
    assert (again.actions, again.state) == (first.actions, first.state)
    experiments = list(world.desired.experiments)
    targets = list(world.desired.config.targets)
    observed = list(world.observed.targets.items())
    for items in (experiments, targets, observed):
        rnd.shuffle(items)
    shuffled = replace(
        world,
        desired=replace(
            world.desired,
            experiments=tuple(experiments),
            config=replace(world.desired.config, targets=tuple(targets)),
        ),
        observed=ObservedState(dict(observed)),
        running=tuple(rnd.sample(world.running, len(world.running))),
    )
    other = plan(shuffled)
    assert (other.actions, other.state) == (first.actions, first.state)


@FEWER
@given(worlds(), st.data())
def test_a_target_whose_environment_failed_gets_no_placement(world: World, data: st.DataObject) -> None:
    failed = data.draw(st.sampled_from(sorted(world.targets)))
    env = ready(world)
    env[failed] = verdict(world.targets[failed], ENV_FAILED)
    result = plan(world, env)
    assert not [a for a in result.actions if isinstance(a, Launch) and a.target == failed]
    assert not [a for a in result.actions if isinstance(a, CheckEnv)]  # every verdict is fresh
    for entry in result.state.entries:
        spec = world.desired.by_id()[entry.id]
        if entry.waiting_reason and failed in (spec.targets or world.targets):
            assert f"{failed} " in entry.waiting_reason or entry.waiting_reason.endswith(failed), entry


def test_env_failed_minimal_case() -> None:
    """The ENV_FAILED target is the only one that fits; the experiment waits and says why."""
    target = Target("solo", TargetKind.SSH, "/r/solo")
    gpu = GpuObservation(0, "GPU-0", "NVIDIA H100 80GB HBM3", 81559.0, 4.0, 81555.0, 0.0)
    world = World(
        DesiredState(
            config=Config(project=PROJECT, targets=(target,)),
            experiments=(ExperimentSpec(id="a", base_id="a", command="python3 t.py", source="x:1", vram_gb=8.0),),
            revision=REVISION,
        ),
        ObservedState({"solo": TargetObservation("solo", reachable=True, gpus=(gpu,), root="/r/solo")}),
    )
    assert [a.gpus for a in plan(world).actions if isinstance(a, Launch)] == [(0,)]
    result = plan(world, {"solo": verdict(target, ENV_FAILED)})
    assert not [a for a in result.actions if isinstance(a, Launch)]
    (entry,) = result.state.entries
    assert entry.waiting_reason is not None and "solo" in entry.waiting_reason
    assert "env failed" in entry.waiting_reason


@pytest.mark.parametrize("gpus", [None, 1])
def test_an_experiment_with_a_vram_estimate_is_not_launched_without_a_gpu(gpus: int | None) -> None:
    """A GPU host whose nvidia-smi failed (driver gone: exit 9) is observed with ``gpus=None``,
    like a CPU host. An experiment that says it needs VRAM must not start there without a GPU."""
    target = Target("lab", TargetKind.SSH, "/r/lab")
    spec = ExperimentSpec(id="a", base_id="a", command="python3 t.py", source="x:1", vram_gb=16.0, gpus=gpus)
    world = World(
        DesiredState(config=Config(project=PROJECT, targets=(target,)), experiments=(spec,), revision=REVISION),
        ObservedState({"lab": TargetObservation("lab", reachable=True, gpus=None, root="/r/lab")}),
    )
    result = plan(world)
    assert [(a.exp_id, a.gpus) for a in result.actions if isinstance(a, Launch)] == []


def _place_without_memo(spec: ExperimentSpec, ctx: Context, pinned: str | None = None) -> Placement | str:
    names = spec.targets or ctx.desired.config.target_names
    return place_mod._place(spec, (pinned,) if pinned is not None and pinned in names else names, ctx)


@SETTINGS
@given(worlds())
def test_refusals_remembered_within_a_pass_change_no_plan(world: World) -> None:
    """``place`` remembers why nothing fitted until the next reservation: a queue of alike
    experiments gets the same launches and the same waiting reasons as placing each afresh."""
    memo = plan(world)
    with mock.patch("reconciler.plan.core.place", _place_without_memo):
        fresh = plan(world)
    assert (memo.actions, memo.state) == (fresh.actions, fresh.state)
