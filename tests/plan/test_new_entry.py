"""``entries.new_entry`` (one construction) is the entry ``sync`` makes of a bare pending entry,
field for field, and is already in step with its spec: ``sync`` returns it as it is (the planner
skips that call for an experiment new to the spec)."""

from __future__ import annotations

import itertools

from reconciler.model.config import Policies
from reconciler.model.spec import ExperimentSpec, Group
from reconciler.model.status import Status, StatusEntry
from reconciler.plan.entries import new_entry, sync


def test_new_entry_is_the_synced_bare_entry_and_in_step() -> None:
    for hours, retries, seed, text, result, group in itertools.product(
        (None, 0.0, 3.5, float("nan")),
        (None, 0, 5),
        (None, 0, 3),
        ("", "a description"),
        ("experiments/results/{exp_id}.csv", "out/r_{seed}.json"),
        tuple(Group),
    ):
        spec = ExperimentSpec(
            id=f"a_s{seed}",
            base_id="a",
            command="python t.py --seed {seed}",
            source="dispatch/x.yaml:1",
            seed=seed,
            group=group,
            method="m",
            dataset="d",
            phase="p1",
            stage=2,
            priority=7,
            expected_duration_hours=hours,
            max_retries=retries,
            description=text,
            result_file=result,
        )
        for policies in (Policies(), Policies(max_retries=9)):
            bare = sync(StatusEntry(id=spec.id, status=Status.PENDING), spec, policies, now_iso="")
            built = new_entry(spec, policies)
            assert repr(built) == repr(bare)
            assert sync(built, spec, policies, "2026-11-26T12:00:00+00:00") is built
