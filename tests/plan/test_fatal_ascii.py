"""The literal prefilter ``fatal_signature`` applies to ASCII log tails before each signature's
case-insensitive regex (``failure._ascii_may_match``) never hides a line the regex alone finds:
tails built from the pieces of the signatures, in every case, with separators and line breaks
inside lines, and tails with non-ASCII letters that fold onto ASCII ones (the Kelvin sign, the
long s, the dotless i), which take the regexes' path."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.plan.failure import CUDA_OOM, NAN_LOSS, Failure, _ascii_may_match, fatal_signature
from tests.plan.test_fatal_lines import _by_regex_alone

PIECES = [
    "loss", "LoSs", "LOSS", "train_loss", "loss\n", "=", ":", " ", "\t", "\n", "\x0b", "\x1c", "nan", "NaN",
    "inf", "-inf", "INF", "nan loss", "NaN Loss", "nan  loss", "non-finite loss", "Non-Finite LOSS", "non-finite",
    "cuda", "CUDA out of memory", "Cuda Out Of\nMemory", "out of memory", "OutOfMemoryError", "outofmemory",
    "CUBLAS_STATUS_ALLOC_FAILED", "cublas_status", "_", "x", "0.53", "info", "infer", "nanosecond", "grad norm inf",
]  # fmt: skip
FOLDING = ["\u212a", "\u017f", "\u0131", "\u0130", "\u00e9"]  # Kelvin sign, long s, dotless i, I with dot, e acute

ascii_line = st.lists(st.sampled_from(PIECES), max_size=8).map("".join)
any_line = st.lists(st.sampled_from(PIECES + FOLDING), max_size=8).map("".join)


@settings(max_examples=1500, deadline=None)
@given(st.lists(ascii_line, min_size=1, max_size=6))
def test_the_ascii_prefilter_never_hides_a_fatal_line(log_tail: list[str]) -> None:
    assert fatal_signature(log_tail) == _by_regex_alone(log_tail)


@settings(max_examples=600, deadline=None)
@given(st.lists(any_line, min_size=1, max_size=6))
def test_tails_with_folding_letters_give_what_the_regexes_give(log_tail: list[str]) -> None:
    assert fatal_signature(log_tail) == _by_regex_alone(log_tail)


def test_the_prefilter_needs_a_literal_of_the_signature() -> None:
    assert _ascii_may_match(CUDA_OOM, "torch.outofmemoryerror: cuda out of memory")
    assert not _ascii_may_match(CUDA_OOM, "out of memory (host)")
    assert _ascii_may_match(NAN_LOSS, "step 3 loss \n= -inf")
    assert not _ascii_may_match(NAN_LOSS, "step 140 grad norm inf, update skipped\nloss 0.53")
    assert _ascii_may_match("kernel_oom", "anything")  # a class it knows nothing of: the regex decides


def test_a_suspect_but_healthy_tail_is_not_fatal_and_a_fatal_one_is() -> None:
    healthy = [f"epoch 3 step {k}/500 loss 0.{5321 - k} lr 3.0e-04 12.3 it/s" for k in range(19)]
    assert fatal_signature([*healthy, "step 140 grad norm inf, update skipped"]) is None
    line = "step 141 Loss: NaN"
    assert fatal_signature([*healthy, line]) == Failure(NAN_LOSS, (line,), "nan_loss while running")
