"""The example project's files agree with each other and with the schemas."""

from __future__ import annotations

import json
import re

import jsonschema
import yaml

from tests.example.tools import EXAMPLE, REPO

SCHEMA_LINE = re.compile(r"^# yaml-language-server: \$schema=(?P<path>\S+)$")


def schema(kind: str) -> dict:
    return json.loads((REPO / "schemas" / f"{kind}.schema.json").read_text())


def test_files_match_their_schemas() -> None:
    pairs = {
        "config": EXAMPLE / "config" / "reconciler.yaml",
        "dispatch": EXAMPLE / "dispatch" / "experiments.yaml",
        "decisions": EXAMPLE / "dispatch" / "decisions.yaml",
    }
    for kind, path in pairs.items():
        jsonschema.validate(yaml.safe_load(path.read_text()), schema(kind))
        first = path.read_text().splitlines()[0]
        match = SCHEMA_LINE.match(first)
        assert match, f"{path.name} lacks the schema comment line"
        assert (path.parent / match["path"]).resolve() == (REPO / "schemas" / f"{kind}.schema.json").resolve()
    jsonschema.validate(json.loads((EXAMPLE / "experiments" / "definitions.json").read_text()), schema("definitions"))
    jsonschema.validate(json.loads((EXAMPLE / "experiments" / "pilot_design.json").read_text()), schema("design"))


def test_definitions_and_design_name_the_dispatch_base_ids() -> None:
    dispatch = yaml.safe_load((EXAMPLE / "dispatch" / "experiments.yaml").read_text())
    ids = {e["id"] for e in dispatch["experiments"]}
    definitions = json.loads((EXAMPLE / "experiments" / "definitions.json").read_text())
    assert {d["id"] for d in definitions} == ids
    design = json.loads((EXAMPLE / "experiments" / "pilot_design.json").read_text())
    assert {c["exp_id"] for c in design["cells"]} == ids
    rows, cols = {r["id"] for r in design["rows"]}, {c["id"] for c in design["cols"]}
    for exp in dispatch["experiments"]:
        assert exp["method"] in rows and exp["dataset"] in cols


def test_config_has_one_quick_local_target() -> None:
    config = yaml.safe_load((EXAMPLE / "config" / "reconciler.yaml").read_text())
    assert config["targets"] == {
        "local": {"kind": "local", "root": ".reconciler/runs-local", "python": "python3", "max_runs": 4}
    }
    assert config["policies"]["poll_interval"] <= 5


def test_the_reconciler_owned_files_are_not_shipped() -> None:
    assert not (EXAMPLE / "dispatch" / "state.json").exists()
    assert not (EXAMPLE / "progress").exists()
    ignored = (EXAMPLE / ".gitignore").read_text().splitlines()
    assert ".reconciler/" in ignored and "__pycache__/" in ignored
