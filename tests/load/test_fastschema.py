"""The compiled yes/no schema check (``reconciler.load.fastschema``) must give ``jsonschema``'s verdict
(through ``schema_check``'s strict validator) on every document: it may never accept what
``jsonschema`` refuses, since a document it accepts is not checked again. Held to the same verdict on
the project files of the example, the minimal project and every bad case of ``tests/data/bad``, and
on many mutations of them (a value replaced by another of any JSON type, a key removed, a key
added), generated with hypothesis."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.load.schema_check import fast_check_for, validator_for
from reconciler.load.yamlpos import parse_yaml
from tests.example.tools import EXAMPLE
from tests.load.project import write_project

BAD = Path(__file__).resolve().parent.parent / "data" / "bad"
KIND_OF = {
    "config/reconciler.yaml": "config",
    "dispatch/decisions.yaml": "decisions",
    "experiments/definitions.json": "definitions",
    "dispatch/state.json": "state",
}


def _kind(rel: str) -> str | None:
    if rel in KIND_OF:
        return KIND_OF[rel]
    if rel.startswith("dispatch/") and rel.endswith(".yaml"):
        return "dispatch"
    if rel.startswith("experiments/") and rel.endswith("_design.json"):
        return "design"
    if rel.startswith("progress/env_") and rel.endswith(".json"):
        return "env"
    return None


def _documents(root: Path) -> list[tuple[str, Any]]:
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        kind = _kind(rel)
        if kind is None or not path.is_file():
            continue
        text = path.read_text()
        try:
            data = json.loads(text) if rel.endswith(".json") else parse_yaml(text, rel)[0]
        except ValueError:
            continue
        if data is None:
            continue
        out.append((kind, data.data if hasattr(data, "data") else data))
    return out


def _states() -> list[tuple[str, Any]]:
    """States a pass writes: the planned states of golden cases with attempts, escalations,
    conditions, live GPU memory, sidecars."""
    from reconciler.plan import make_plan
    from tests.plan import builders
    from tests.plan.test_golden import CASES

    out = []
    for folder in CASES[-12:]:
        case = yaml.safe_load((folder / "input.yaml").read_text())
        desired = builders.desired(case)
        project = desired.config.project
        plan = make_plan(
            desired, builders.recorded(case, project), builders.observed(case, project), builders.now(case)
        )
        out.append(("state", json.loads(plan.state.dumps())))
    return out


def _corpus(tmp: Path) -> list[tuple[str, Any]]:
    docs = _documents(EXAMPLE) + _documents(write_project(tmp / "minimal")) + _states()
    for case in sorted(p for p in BAD.iterdir() if p.is_dir()):
        docs += _documents(case)
    return docs


def same_verdict(kind: str, data: Any) -> None:
    fast = fast_check_for(kind)
    assert fast is not None, f"the schema of {kind} no longer compiles: every check is slow"
    slow_valid = not any(True for _ in validator_for(kind).iter_errors(data))
    assert fast(data) == slow_valid, f"{kind}: fast {fast(data)}, jsonschema {slow_valid}: {json.dumps(data)[:400]}"


def test_every_file_of_the_corpus(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    assert {k for k, _ in corpus} >= {"config", "dispatch", "decisions", "definitions", "design", "state"}
    for kind, data in corpus:
        same_verdict(kind, data)


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**6) | st.floats(-10, 1e6, allow_nan=False)
    | st.sampled_from(["", "x", "main", "local", "a b", "exp_1", "1", "0.5", "pending", "$bad", "ok\n"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["id", "x", "command", "n"]), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(data: Any, path: tuple[Any, ...], how: str, value: Any) -> Any:
    data = copy.deepcopy(data)
    if not path:
        return value if how == "replace" else data
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if how == "replace":
        parent[last] = value
    elif how == "delete" and isinstance(parent, dict):
        del parent[last]
    elif how == "add" and isinstance(parent, dict):
        parent["unknown_" + str(last)] = value
    elif how == "delete" and isinstance(parent, list):
        del parent[last]
    return data


CORPUS: list[tuple[str, Any]] = []


@pytest.fixture(scope="module", autouse=True)
def _load_corpus(tmp_path_factory: pytest.TempPathFactory) -> None:
    CORPUS[:] = _corpus(tmp_path_factory.mktemp("corpus"))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutations_get_the_same_verdict(data: st.DataObject) -> None:
    kind, doc = data.draw(st.sampled_from(CORPUS))
    paths = _paths(doc)
    path = data.draw(st.sampled_from(paths))
    how = data.draw(st.sampled_from(["replace", "replace", "delete", "add"]))
    value = data.draw(VALUES)
    same_verdict(kind, _mutate(doc, path, how, value))


def test_yaml_fixture_is_what_the_example_holds() -> None:
    config = yaml.safe_load((EXAMPLE / "config" / "reconciler.yaml").read_text())
    assert fast_check_for("config") is not None and fast_check_for("config")(config)  # type: ignore[misc]
