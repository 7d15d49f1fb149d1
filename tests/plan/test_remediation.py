"""Remediation: what the next attempt's command becomes after a classified failure."""

from __future__ import annotations

from reconciler.model.spec import RemediationRule
from reconciler.plan.failure import CUDA_OOM, NAN_LOSS, classify, remediate, rule_for


def test_oom_halves_the_batch_size_and_accumulates() -> None:
    rule = rule_for(CUDA_OOM, ())
    assert remediate("python3 t.py --batch-size 64", rule) == (
        "python3 t.py --batch-size 32 --accumulate-grad-batches 2"
    )
    assert remediate("python3 t.py --batch-size=8", rule) == "python3 t.py --batch-size=4 --accumulate-grad-batches 2"


def test_an_absent_batch_size_is_set_from_the_declared_default() -> None:
    rule = rule_for(CUDA_OOM, (RemediationRule(CUDA_OOM, defaults=(("--batch-size", "64"),)),))
    assert remediate("python3 t.py", rule) == "python3 t.py --batch-size 32 --accumulate-grad-batches 2"


def test_without_a_declared_default_an_absent_flag_is_left_alone() -> None:
    assert remediate("python3 t.py", rule_for(CUDA_OOM, ())) == "python3 t.py --accumulate-grad-batches 2"


def test_nan_adds_clipping_and_drops_fp16_keeping_placeholders_and_operators() -> None:
    command = "cd x && python3 t.py --fp16 --out {result_file} > log.txt && echo ok"
    expected = "cd x && python3 t.py --out {result_file} --grad-clip 1.0 > log.txt && echo ok"
    assert remediate(command, rule_for(NAN_LOSS, ())) == expected


def test_an_override_keeps_the_default_fields_it_does_not_name() -> None:
    rule = rule_for(CUDA_OOM, (RemediationRule(CUDA_OOM, retry=False),))
    assert rule.retry is False
    assert rule.halve_args == ("--batch-size",)


def test_classes_are_tried_in_order_with_their_evidence() -> None:
    failure = classify(1, ["step 3 loss=nan", "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"])
    assert failure.klass == CUDA_OOM  # OOM comes first in the fixed order
    assert failure.evidence == ("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB",)
    assert classify(137, ["epoch 1"]).klass == "killed"  # SIGKILL without OOM evidence
    assert classify(137, ["epoch 1"], None, ["cgroup x: oom_kill 0 -> 1"]).klass == "kernel_oom"
    assert classify(2, ["ModuleNotFoundError: No module named 'x'"]).klass == "import_error"
    assert classify(1, ["OSError: [Errno 28] No space left on device"]).klass == "disk_full"
    assert classify(1, ["Traceback", "ValueError"]).klass == "unknown"


def test_the_experiment_rule_beats_the_project_rule_which_beats_the_built_in_one() -> None:
    project = (RemediationRule(CUDA_OOM, defaults=(("--batch-size", "128"),), retry=True),)
    experiment = (RemediationRule(CUDA_OOM, set_args=(("--accumulate-grad-batches", "4"),)),)
    assert remediate("python3 t.py", rule_for(CUDA_OOM, (), project)) == (
        "python3 t.py --batch-size 64 --accumulate-grad-batches 2"
    )
    assert remediate("python3 t.py", rule_for(CUDA_OOM, experiment, project)) == (
        "python3 t.py --batch-size 64 --accumulate-grad-batches 4"
    )
