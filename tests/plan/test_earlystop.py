"""Early stop's arithmetic: per (phase, dataset, method) cohort, mean over seeds against the best
baseline method's mean, direction-aware, threshold in percentage points (0.01 of the metric)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from reconciler.model.spec import Direction, EarlyStop, ExperimentSpec, Group, MetricScale, StopRule
from reconciler.model.status import Status, StatusEntry
from reconciler.plan import make_plan
from reconciler.plan.earlystop import early_stops, judge
from tests.plan import builders

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
ACC = EarlyStop(metric="accuracy", threshold_pct=0.5, check_after=2)
LOSS = EarlyStop(metric="loss", threshold_pct=1.0, check_after=2, direction=Direction.LOWER)


def spec(exp_id: str, method: str, group: Group = Group.MAIN, dataset: str = "moons", **kw: Any) -> ExperimentSpec:
    kw.setdefault("early_stop", ACC)
    return ExperimentSpec(
        id=exp_id, base_id=exp_id.rsplit("_s", 1)[0], command="x", source="d:1", group=group, method=method,
        dataset=dataset, **kw,
    )  # fmt: skip


def entry(s: ExperimentSpec, status: Status) -> StatusEntry:
    return StatusEntry(
        id=s.id, status=status, group=s.group.value, method=s.method, dataset=s.dataset, phase=s.phase,
        experiment_id=s.base_id,
    )  # fmt: skip


def world(
    done: dict[str, tuple[str, Group, float]], pending: list[ExperimentSpec], metric: str = "accuracy"
) -> tuple[list[StatusEntry], dict[str, dict[str, float]]]:
    entries = [entry(spec(i, m, g), Status.DONE) for i, (m, g, _) in done.items()]
    entries += [entry(s, Status.PENDING) for s in pending]
    return entries, {i: {metric: v} for i, (_, _, v) in done.items()}


B = Group.BASELINE


def test_trailing_method_is_stopped_against_the_best_baseline_method_mean() -> None:
    # logreg mean 0.90; svm has the best single row (0.95) but a mean of 0.89: the best *method* is logreg.
    done = {
        "logreg_s0": ("logreg", B, 0.92), "logreg_s1": ("logreg", B, 0.88),
        "svm_s0": ("svm", B, 0.95), "svm_s1": ("svm", B, 0.83),
        "mlp_s0": ("mlp", Group.MAIN, 0.90), "mlp_s1": ("mlp", Group.MAIN, 0.88),
    }  # fmt: skip
    pending = spec("mlp_s2", "mlp")
    entries, results = world(done, [pending])
    stop = judge(pending, entries, results)  # mlp mean 0.89 trails 0.90 by 1 pp > 0.5
    assert stop is not None
    assert stop.reason.startswith("early stop: mlp on moons trails the best baseline logreg by 1 pp on accuracy")
    results["mlp_s1"] = {"accuracy": 0.894}  # mean 0.897: 0.3 pp behind (the seed's max row would stop it)
    assert judge(pending, entries, results) is None


def test_exactly_at_the_threshold_is_not_a_stop() -> None:
    done = {
        "logreg_s0": ("logreg", B, 0.90), "logreg_s1": ("logreg", B, 0.90),
        "mlp_s0": ("mlp", Group.MAIN, 0.895), "mlp_s1": ("mlp", Group.MAIN, 0.895),
    }  # fmt: skip
    pending = spec("mlp_s2", "mlp")
    entries, results = world(done, [pending])
    assert judge(pending, entries, results) is None  # trails by exactly 0.5 pp
    results["mlp_s1"] = {"accuracy": 0.894}  # mean 0.8945: trails by 0.55 pp
    stop = judge(pending, entries, results)
    assert stop is not None
    assert stop.reason == (
        "early stop: mlp on moons trails the best baseline logreg by 0.55 pp on accuracy "
        "(higher is better; 0.8945 vs 0.9, threshold 0.5 pp) after 2 runs"
    )
    assert stop.evidence == ("mlp: mean accuracy 0.8945 over mlp_s0, mlp_s1", "baseline logreg: mean accuracy 0.9")


def test_lower_is_better_for_a_loss() -> None:
    done = {
        "logreg_s0": ("logreg", B, 0.30), "logreg_s1": ("logreg", B, 0.32),
        "mlp_s0": ("mlp", Group.MAIN, 0.33), "mlp_s1": ("mlp", Group.MAIN, 0.33),
    }  # fmt: skip
    pending = spec("mlp_s2", "mlp", early_stop=LOSS)
    entries, results = world(done, [pending], metric="loss")
    stop = judge(pending, entries, results)  # 0.33 vs best (lowest) 0.31: trails by 2 pp > 1
    assert stop is not None and "(lower is better; 0.33 vs 0.31" in stop.reason
    results["mlp_s0"] = results["mlp_s1"] = {"loss": 0.25}  # lower loss than the baseline: fine
    assert judge(pending, entries, results) is None
    higher = spec("mlp_s2", "mlp", early_stop=EarlyStop("loss", 1.0, 2, Direction.HIGHER))
    assert judge(higher, entries, results) is not None  # the same numbers read the other way round


def test_not_enough_runs_yet() -> None:
    done = {"logreg_s0": ("logreg", B, 0.9), "mlp_s0": ("mlp", Group.MAIN, 0.5)}
    pending = spec("mlp_s1", "mlp")
    entries, results = world(done, [pending])
    assert judge(pending, entries, results) is None  # 1 of check_after 2
    assert judge(spec("mlp_s1", "mlp", early_stop=EarlyStop("accuracy", 0.5, 1)), entries, results) is not None
    del results["mlp_s0"]  # a done run with no value for the metric does not count
    assert judge(spec("mlp_s1", "mlp", early_stop=EarlyStop("accuracy", 0.5, 1)), entries, results) is None


def test_no_baseline_yet() -> None:
    done = {
        "mlp_s0": ("mlp", Group.MAIN, 0.5),
        "mlp_s1": ("mlp", Group.MAIN, 0.5),
        "abl_s0": ("abl", Group.ABLATION, 0.9),
    }
    pending = spec("mlp_s2", "mlp")
    entries, results = world(done, [pending])
    assert judge(pending, entries, results) is None  # an ablation is not a baseline
    entries.append(entry(spec("logreg_s0", "logreg", B), Status.RUNNING))
    results["logreg_s0"] = {"accuracy": 0.9}  # a running baseline's numbers do not count
    assert judge(pending, entries, results) is None


def test_no_config_no_check_and_each_spec_uses_its_own_config() -> None:
    done = {"logreg_s0": ("logreg", B, 0.9), "mlp_s0": ("mlp", Group.MAIN, 0.88), "mlp_s1": ("mlp", Group.MAIN, 0.88)}
    entries, results = world(done, [])
    assert judge(spec("mlp_s2", "mlp", early_stop=None), entries, results) is None
    assert judge(spec("mlp_s2", "mlp", early_stop=EarlyStop("accuracy", 3.0, 2)), entries, results) is None
    assert judge(spec("mlp_s2", "mlp", early_stop=EarlyStop("accuracy", 1.0, 2)), entries, results) is not None


def test_only_the_trailing_cohort_is_stopped_and_ablations_and_baselines_can_be() -> None:
    done = {
        "logreg_s0": ("logreg", B, 0.90), "svm_s0": ("svm", B, 0.80),
        "mlp_s0": ("mlp", Group.MAIN, 0.80), "mlp_s1": ("mlp", Group.MAIN, 0.80),
        "good_s0": ("good", Group.MAIN, 0.91), "good_s1": ("good", Group.MAIN, 0.91),
        "abl_s0": ("abl", Group.ABLATION, 0.70), "abl_s1": ("abl", Group.ABLATION, 0.70),
    }  # fmt: skip
    pending = [
        spec("mlp_s2", "mlp"), spec("good_s2", "good"), spec("abl_s2", "abl", Group.ABLATION),
        spec("mlp_circles_s0", "mlp", dataset="circles"),  # another dataset: no data there
        spec("svm_s1", "svm", B, early_stop=EarlyStop("accuracy", 0.5, 1)),  # vs the best *other* baseline
        spec("logreg_s1", "logreg", B, early_stop=EarlyStop("accuracy", 0.5, 1)),  # the best: never behind itself
    ]  # fmt: skip
    entries, results = world(done, pending)
    assert sorted(early_stops(pending, entries, results)) == ["abl_s2", "mlp_s2", "svm_s1"]


def test_phases_are_separate_cohorts() -> None:
    done = {"logreg_s0": ("logreg", B, 0.9), "mlp_s0": ("mlp", Group.MAIN, 0.5)}
    entries, results = world(done, [])
    one = EarlyStop("accuracy", 0.5, 1)
    assert judge(spec("mlp_s1", "mlp", early_stop=one, phase="full"), entries, results) is None
    assert judge(spec("mlp_s1", "mlp", early_stop=one), entries, results) is not None


CASE: dict[str, Any] = {
    "config": {"project": "proj", "targets": [{"name": "local", "kind": "local", "root": "/r/local"}]},
    "experiments": [
        {"id": f"{m}_{d}_s{s}", "method": m, "dataset": d, "group": g,
         "early_stop": {"metric": "accuracy", "threshold_pct": 0.5, "check_after": 2}}
        for m, g in (("logreg", "baseline"), ("mlp", "main"), ("cnn", "main"))
        for d in ("moons", "circles")
        for s in range(4)
    ],
    "recorded": {"experiments": [
        {"id": i, "status": "done"} for i in
        ("logreg_moons_s0", "logreg_moons_s1", "mlp_moons_s0", "mlp_moons_s1", "cnn_moons_s0", "cnn_moons_s1",
         "logreg_circles_s0", "mlp_circles_s0", "mlp_circles_s1")
    ] + [{"id": "mlp_moons_s2", "status": "running", "attempt": 1, "target": "local", "attempts": [
        {"n": 1, "target": "local", "command": "x", "run_dir": "/r/local/runs/mlp_moons_s2/1", "token": "t",
         "pid": 10, "start_time": "5"}]}]},
    "observed": {"local": {"runs": [{"exp_id": "mlp_moons_s2", "attempt": 1, "token": "t", "launched": True,
                                     "pid": 10, "start_time": "5", "alive": True}]}},
    "env": {"local": {"status": "ENV_READY"}},
    "results": {
        "logreg_moons_s0": {"accuracy": 0.9}, "logreg_moons_s1": {"accuracy": 0.9},
        "mlp_moons_s0": {"accuracy": 0.8}, "mlp_moons_s1": {"accuracy": 0.8},
        "cnn_moons_s0": {"accuracy": 0.9}, "cnn_moons_s1": {"accuracy": 0.9},
        "logreg_circles_s0": {"accuracy": 0.7},
        "mlp_circles_s0": {"accuracy": 0.8}, "mlp_circles_s1": {"accuracy": 0.8},
    },
}  # fmt: skip


@pytest.mark.parametrize("with_results", [True, False])
def test_make_plan_cancels_only_the_trailing_pending_runs(with_results: bool) -> None:
    case = CASE if with_results else {k: v for k, v in CASE.items() if k != "results"}
    desired = builders.desired(case)
    plan = make_plan(
        desired, builders.recorded(case, "proj"), builders.observed(case, "proj"), NOW,
        env=builders.env(case, desired), results=builders.results(case),
    )  # fmt: skip
    status = {e.id: e.status for e in plan.state.entries}
    cancelled = sorted(i for i, s in status.items() if s is Status.CANCELLED)
    assert status["mlp_moons_s2"] is Status.RUNNING  # running runs finish
    assert status["mlp_moons_s0"] is Status.DONE
    if not with_results:
        assert cancelled == []
        return
    assert cancelled == ["mlp_moons_s3"]  # not cnn (level), not mlp on circles (ahead), not running s2
    stopped = plan.state.by_id()["mlp_moons_s3"]
    assert stopped.escalation is not None and stopped.escalation.kind == "early_stop" and stopped.escalation.open
    assert "early stop: mlp on moons trails the best baseline logreg by 10 pp on accuracy" in stopped.notes
    assert stopped.escalation.reason in stopped.notes


SEED_RULE = EarlyStop(
    metric="accuracy", threshold_pct=0.5, check_after=2, rule=StopRule.MUST_BEAT, scale=MetricScale.PERCENT
)


@pytest.mark.parametrize(
    ("ours", "stopped"),
    [
        ((90.0, 90.0), True),  # level with the baseline: the seed's rule wants a lead
        ((90.2, 90.4), True),  # leads by 0.3 pp < 0.5
        ((90.4, 90.6), False),  # leads by exactly 0.5 pp: enough
        ((91.0, 91.2), False),
        ((89.0, 89.0), True),  # behind
    ],
)
def test_the_seeds_rule_stops_a_method_that_does_not_lead_by_the_threshold(
    ours: tuple[float, float], stopped: bool
) -> None:
    """``rule: must_beat`` on a 0-100 metric (``scale: percent``): cancel unless the method's mean
    beats the best baseline method's mean by at least ``threshold_pct`` points."""
    done = {
        "logreg_s0": ("logreg", B, 90.0), "logreg_s1": ("logreg", B, 90.0),
        "mlp_s0": ("mlp", Group.MAIN, ours[0]), "mlp_s1": ("mlp", Group.MAIN, ours[1]),
    }  # fmt: skip
    pending = spec("mlp_s2", "mlp", early_stop=SEED_RULE)
    entries, results = world(done, [pending])
    stop = judge(pending, entries, results)
    assert (stop is not None) is stopped
    if stop is not None:
        assert "needs a lead of 0.5 pp" in stop.reason and "percent scale" in stop.reason


def test_the_scale_says_what_a_point_is() -> None:
    """The same 0.3 difference is 30 pp on a fraction scale and 0.3 pp on a percent scale."""
    done = {
        "logreg_s0": ("logreg", B, 90.0), "logreg_s1": ("logreg", B, 90.0),
        "mlp_s0": ("mlp", Group.MAIN, 89.7), "mlp_s1": ("mlp", Group.MAIN, 89.7),
    }  # fmt: skip
    percent = EarlyStop(metric="accuracy", threshold_pct=0.5, check_after=2, scale=MetricScale.PERCENT)
    fraction = EarlyStop(metric="accuracy", threshold_pct=0.5, check_after=2)
    for rule, stopped in ((percent, False), (fraction, True)):
        pending = spec("mlp_s2", "mlp", early_stop=rule)
        entries, results = world(done, [pending])
        assert (judge(pending, entries, results) is not None) is stopped
