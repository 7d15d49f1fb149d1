"""What each probe is asked to detail (``observe.request``): a live attempt on its own target only,
the last attempt of a pending retry on its target, and a pending entry's next attempt only on the
target the in-flight journal names (a crashed pass's launch) — never every pending experiment of
the project on every target (issue 20: ~860 KB a pass at 16 hosts and 10,000 experiments)."""

from __future__ import annotations

from reconciler.model.config import Config, Target, TargetKind
from reconciler.model.desired import DesiredState
from reconciler.model.spec import ExperimentSpec
from reconciler.model.status import Attempt, StateFile, Status, StatusEntry
from reconciler.observe.request import probe_request


def _spec(exp_id: str) -> ExperimentSpec:
    return ExperimentSpec(id=exp_id, base_id=exp_id, command="python3 x.py {result_file}", source="d.yaml:1")


def test_each_target_is_asked_about_its_own_attempts_only() -> None:
    targets = tuple(Target(name=n, kind=TargetKind.SSH, root=f"/r/{n}") for n in ("a", "b", "c"))
    config = Config(project="p", targets=targets)
    specs = tuple(_spec(i) for i in ("live", "retry", "waits", "new", "crashed"))
    desired = DesiredState(config=config, experiments=specs)

    def attempt(n: int, target: str, pid: int | None = None) -> Attempt:
        return Attempt(n=n, target=target, command="c", run_dir=f"/r/{target}/runs/x/{n}", token="t", pid=pid)

    recorded = StateFile(
        project="p",
        entries=(
            StatusEntry(id="live", status=Status.RUNNING, attempt=1, attempts=(attempt(1, "a", 10),)),
            StatusEntry(id="retry", status=Status.PENDING, attempt=2, attempts=(attempt(2, "b", 11),)),
            StatusEntry(id="waits", status=Status.PENDING, attempt=0),
            StatusEntry(id="crashed", status=Status.PENDING, attempt=1, attempts=(attempt(1, "b"),)),
        ),
    )
    request = probe_request(recorded, desired, inflight=[("crashed", 2, "c")])
    assert request.want == {"a": {("live", 1)}, "b": {("retry", 2)}, "c": {("crashed", 2)}}
    assert probe_request(recorded, desired).want == {"a": {("live", 1)}, "b": {("retry", 2)}, "c": set()}
