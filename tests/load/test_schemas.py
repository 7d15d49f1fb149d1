"""The schemas: one source, valid draft 2020-12, ids and defaults as the file contract says."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from reconciler import schemas
from reconciler.model import config as model

KINDS = ["config", "dispatch", "decisions", "definitions", "design", "state", "env", "sidecar"]
YAML_KINDS = ["config", "dispatch", "decisions"]
REPO = Path(__file__).resolve().parents[2]


def test_kinds_and_files() -> None:
    assert sorted(schemas.schema_files()) == sorted(KINDS)
    assert all(name == f"{kind}.schema.json" for kind, name in schemas.schema_files().items())
    assert sorted(p.name for p in (REPO / "schemas").glob("*.json")) == sorted(schemas.schema_files().values())


def test_one_source_in_the_tree_and_in_the_wheel() -> None:
    assert schemas.schema_dir() == REPO / "schemas"
    pyproject = (REPO / "pyproject.toml").read_text()  # tomllib is 3.11+; a line check is enough
    section = pyproject.split("[tool.hatch.build.targets.wheel.force-include]", 1)[1]
    assert section.split("[", 1)[0].strip() == '"schemas" = "reconciler/schemas"'


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_valid_draft_2020_12_with_its_id(kind: str) -> None:
    schema = schemas.load_schema(kind)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:reconciler:schema:{kind}:1" == schemas.schema_id(kind)
    assert schemas.load_schema(kind) is schema  # cached


@pytest.mark.parametrize("kind", YAML_KINDS)
def test_yaml_kinds_require_version_1_and_refuse_unknown_keys(kind: str) -> None:
    schema = schemas.load_schema(kind)
    assert "version" in schema["required"]
    assert schema["properties"]["version"]["const"] == 1
    assert schema["additionalProperties"] is False


def _objects(node: Any) -> list[dict[str, Any]]:
    out = []
    if isinstance(node, dict):
        if "properties" in node:
            out.append(node)
        for key, value in node.items():
            if key != "if":  # an `if` only tests a value; it does not define an object
                out += _objects(value)
    elif isinstance(node, list):
        for value in node:
            out += _objects(value)
    return out


@pytest.mark.parametrize("kind", YAML_KINDS)
def test_our_yaml_objects_are_closed_and_every_key_is_described(kind: str) -> None:
    schema = schemas.load_schema(kind)
    for obj in _objects(schema):
        assert obj.get("additionalProperties") is False, obj.get("description")
        for name, prop in obj["properties"].items():
            if "$ref" in prop and "description" not in prop:
                continue  # described where it is defined
            assert prop.get("description"), f"{kind}: {name} has no description"


def _defaults(kind: str, pointer: str) -> dict[str, Any]:
    node: Any = schemas.load_schema(kind)
    for part in pointer.split("/"):
        node = node[part]
    return {k: v["default"] for k, v in node["properties"].items() if "default" in v}


@pytest.mark.parametrize(
    ("pointer", "cls"),
    [
        ("$defs/target", model.Target),
        ("$defs/gpus", model.GpuPolicy),
        ("$defs/batch", model.BatchOptions),
        ("$defs/policies", model.Policies),
        ("$defs/policies/properties/backoff", model.BackoffPolicy),
        ("$defs/policies/properties/unreachable", model.UnreachablePolicy),
        ("$defs/policies/properties/timeouts", model.TimeoutPolicy),
        ("$defs/git", model.GitSettings),
        ("$defs/notifications", model.Notifications),
        ("$defs/wandb", model.WandbSettings),
        ("$defs/huggingface", model.HubSettings),
    ],
)
def test_config_schema_defaults_are_the_model_defaults(pointer: str, cls: type) -> None:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    documented = _defaults("config", pointer)
    assert documented
    for key, value in documented.items():
        if key not in fields:
            continue  # ssh keys live in SshOptions
        field = fields[key]
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        if isinstance(value, dict):  # a mapping in YAML is a tuple of pairs in the model
            value = list(value.items())
        assert default == (tuple(value) if isinstance(value, list) else value), f"{pointer}.{key}"


def test_dispatch_schema_defaults_are_the_spec_defaults() -> None:
    from reconciler.model.spec import ExperimentSpec

    spec = ExperimentSpec(id="a", base_id="a", command="c", source="s")
    documented = _defaults("dispatch", "$defs/experiment")
    for key in ("group", "stage", "priority", "result_file", "state", "method", "dataset", "phase", "description"):
        value = getattr(spec, key)
        assert getattr(value, "value", value) == documented[key], key


def test_the_remediation_rule_is_the_same_in_the_config_and_dispatch_schemas() -> None:
    from reconciler.schemas import load_schema

    assert load_schema("config")["$defs"]["remediation_rule"] == load_schema("dispatch")["$defs"]["remediation_rule"]
