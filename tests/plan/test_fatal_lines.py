"""The fatal-line check on live runs' log tails: its cheap prefilter never hides a signature
that the full regexes find (``failure.fatal_signature`` against the regexes alone), and the probe's
copy of the prefilter (it drops a live run's tail on the target) agrees with it."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.backends import probe as probe_request
from reconciler.backends.resources import probe as target_probe
from reconciler.plan import failure
from reconciler.plan.failure import CUDA_OOM, NAN_LOSS, Failure, fatal_signature


def _by_regex_alone(log_tail: list[str]) -> Failure | None:
    for klass, pattern in failure._LOG_SIGNATURES:
        if klass in failure.FATAL_WHILE_RUNNING:
            lines = tuple(line for line in log_tail if pattern.search(line))
            if lines:
                return Failure(klass, lines[-5:], f"{klass} while running")
    return None


FRAGMENTS = [
    "loss", "Loss", "LOSS", "=", ":", " ", "  ", "\t", "nan", "NaN", "NAN", "inf", "Inf", "-inf", "-", "_",
    "info", "INFO", "finite", "non-finite loss", "NaN loss", "CUDA out of memory", "cuda Out Of Memory",
    "OutOfMemoryError", "torch.cuda.OutOfMemoryError", "CUBLAS_STATUS_ALLOC_FAILED", "0.53", "epoch 3",
    "nanosecond", "infer", "x", "é", "\r", "loss=", "loss: ", "Loss =", "train_loss:", " nan", "=inf", ": -inf",
]  # fmt: skip

line = st.lists(st.sampled_from(FRAGMENTS), max_size=8).map("".join) | st.text(max_size=40)


@settings(max_examples=600, deadline=None)
@given(st.lists(line, max_size=6))
def test_prefilter_never_hides_a_fatal_line(log_tail: list[str]) -> None:
    assert fatal_signature(log_tail) == _by_regex_alone(log_tail)


def test_fatal_lines_found_and_ordinary_ones_not() -> None:
    ordinary = [f"epoch 3 step {k}/500 loss 0.{5321 - k} lr 3.0e-04 INFO 12.3 it/s" for k in range(20)]
    assert fatal_signature(ordinary) is None
    nan = "step 9 loss = nan"
    assert fatal_signature([*ordinary, nan]) == Failure(NAN_LOSS, (nan,), "nan_loss while running")
    oom = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    found = fatal_signature([*ordinary, oom])
    assert found is not None and found.klass == CUDA_OOM and found.evidence == (oom,)
    assert fatal_signature(["loss: -inf"]) is not None
    assert fatal_signature(["loss: infinite patience", "nanoseconds: 12"]) is None


@settings(max_examples=600, deadline=None)
@given(st.lists(line, max_size=6))
def test_the_probe_drops_a_live_tail_only_when_it_cannot_be_fatal(log_tail: list[str]) -> None:
    fatal = json.loads(probe_request.probe_request("/r"))["fatal"]
    kept = target_probe.may_be_fatal(log_tail, fatal)
    assert kept == failure._may_be_fatal(log_tail)
    if not kept:
        assert _by_regex_alone(log_tail) is None
