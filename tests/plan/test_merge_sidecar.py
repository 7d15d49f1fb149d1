"""``active._merge_sidecar`` compares the job's own sidecar fields with the recorded ones without
building them (every live run, every pass): the entry it returns is the one the plain rule gives
(keep the sidecar's fields but the controller's, record them sorted when they differ), for
sidecars with the controller's fields, NaN values (the same object or not), fields gone or new,
and recorded fields that hold a controller's field (an older or hand-edited state)."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.model.observed import RunObservation
from reconciler.model.status import StatusEntry
from reconciler.plan.active import _NOT_OWNED, _merge_sidecar, _text

NAN = float("nan")
KEYS = ["status", "epoch", "step", "loss", "wandb_run_id", "pid", "host", "gpu_peak_mb", "finished"]
VALUES = st.sampled_from([0, 1, 3, 3.5, NAN, float("nan"), "a", "run7", None, True, (1, 2)]) | st.lists(
    st.integers(0, 3), max_size=2
)


def _reference(entry: StatusEntry, sidecar: dict[str, Any]) -> StatusEntry:
    """The rule as it was written before (no artifact fields in these sidecars)."""
    if not sidecar:  # nothing reported: nothing taken
        return entry
    wandb_run_id = _text(sidecar, "wandb_run_id", entry.wandb_run_id)
    hf_artifact_url = _text(sidecar, "hf_artifact_url", entry.hf_artifact_url)
    if wandb_run_id != entry.wandb_run_id or hf_artifact_url != entry.hf_artifact_url:
        entry = dataclasses.replace(entry, wandb_run_id=wandb_run_id, hf_artifact_url=hf_artifact_url)
    owned = {k: v for k, v in sidecar.items() if k not in _NOT_OWNED}
    if owned != dict(entry.sidecar):
        entry = dataclasses.replace(entry, sidecar=tuple(sorted(owned.items(), key=lambda kv: kv[0])))
    return entry


def _run(sidecar: dict[str, Any]) -> RunObservation:
    return RunObservation(exp_id="x", attempt=1, token="t", launched=True, alive=True, sidecar=sidecar)


@settings(max_examples=800, deadline=None)
@given(
    st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6),
    st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=6),
    st.booleans(),
)
def test_the_comparison_gives_what_the_plain_rule_gives(
    sidecar: dict[str, Any], recorded: list[tuple[str, Any]], same_values: bool
) -> None:
    if same_values:  # the usual pass: what was recorded from this very sidecar
        recorded = sorted(((k, v) for k, v in sidecar.items() if k not in _NOT_OWNED), key=lambda kv: kv[0])
    entry = StatusEntry(id="x", sidecar=tuple(recorded), wandb_run_id="run7")
    got = _merge_sidecar(entry, _run(sidecar), "2026-11-26T12:00:00+00:00")
    want = _reference(entry, sidecar)
    assert (got is entry) == (want is entry)
    assert repr(got) == repr(want)
