"""Fuzzing the parsers of what targets print (the probe's JSON, nvidia-smi's CSV) and of the
status file: never a traceback, only a parse or a classified error."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.backends.gpus import build_gpus, parse_compute_apps, parse_gpu_query
from reconciler.backends.probe import parse_probe
from reconciler.errors import ReconcilerError
from reconciler.model.status import StateFile

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

CELLS = st.sampled_from(["0", "1", "81559", "[N/A]", "[Not Supported]", "", " ", "GPU-1a", "NVIDIA A100", "-1", "3.5"])
CSV = st.lists(st.lists(CELLS, min_size=0, max_size=9).map(", ".join), max_size=6).map("\n".join)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
PROBE_KEYS = ["v", "host", "root", "free_disk_gb", "fields", "runs", "details", "errors", "gpus"]


@settings(max_examples=300, deadline=None)
@given(query=CSV | st.text(max_size=200), apps=st.none() | CSV | st.text(max_size=100))
def test_nvidia_smi_parsers_never_raise(query: str, apps: str | None) -> None:
    gpus = build_gpus(query, apps)
    for gpu in gpus:  # whatever came in, what comes out is typed
        assert isinstance(gpu.index, int)
        assert gpu.memory_free_mb is None or isinstance(gpu.memory_free_mb, float)
    parse_gpu_query(query)
    if apps is not None:
        parse_compute_apps(apps)


@settings(max_examples=300, deadline=None)
@given(doc=st.fixed_dictionaries({}, optional=dict.fromkeys(PROBE_KEYS, JSONISH)), noise=st.text(max_size=40))
def test_probe_parser_never_raises_a_foreign_error(doc: dict[str, object], noise: str) -> None:
    stdout = noise + "\n" + json.dumps(doc)
    try:
        observation = parse_probe("t", stdout)
    except ReconcilerError:
        return
    assert observation.target == "t"


@settings(max_examples=200, deadline=None)
@given(doc=st.fixed_dictionaries({}, optional={"project": JSONISH, "experiments": JSONISH, "version": JSONISH}))
def test_state_file_reader_raises_only_value_errors(doc: dict[str, object]) -> None:
    # The engine turns exactly these into "corrupt, restored from the last commit"; any other
    # exception type escaping would be a traceback.
    with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
        StateFile.loads(json.dumps(doc))
