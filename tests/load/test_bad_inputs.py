"""Every case in ``tests/data/bad/``: exact messages, exit code 2, and nothing written.

A case folder holds files copied over the minimal valid project (``delete.txt`` lists files to
remove) and ``expected.txt``, the exact ``file:line:col: field: message`` lines validation prints.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.commands.validate import validate
from reconciler.errors import SchemaError
from reconciler.load import load_desired
from tests.load.project import overlay, snapshot, write_project

BAD = Path(__file__).resolve().parent.parent / "data" / "bad"
CASES = sorted(p.name for p in BAD.iterdir() if p.is_dir())
STATE_ONLY = {"corrupt_state"}
"""Cases about dispatch/state.json, which load_desired does not validate (load_state does)."""


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, list[str]]:
    root = write_project(tmp_path / "proj")
    src = BAD / request.param
    overlay(src, root)
    return root, (src / "expected.txt").read_text().splitlines()


def test_cases_cover_the_brief() -> None:
    wanted = {
        "malformed_yaml",
        "malformed_json",
        "wrong_type",
        "unknown_key",
        "missing_key",
        "unknown_target",
        "duplicate_id",
        "path_escape",
        "unsafe_id",
        "design_cell_nowhere",
        "definition_nowhere",
        "non_integer_seed",
        "negative_duration",
        "unknown_placeholder",
    }
    assert wanted <= set(CASES)


def test_validate_prints_exact_problems_and_exits_2(case: tuple[Path, list[str]]) -> None:
    root, expected = case
    before = snapshot(root)
    result = CliRunner().invoke(validate, [str(root)])
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert lines[:-1] == expected
    assert lines[-1].endswith(f"invalid ({len(expected)} problem{'s' if len(expected) > 1 else ''} in 1 file)")
    assert snapshot(root) == before


def test_json_output_carries_the_same_problems(case: tuple[Path, list[str]]) -> None:
    root, expected = case
    before = snapshot(root)
    result = CliRunner().invoke(validate, [str(root), "--json"])
    assert result.exit_code == 2
    payload = json.loads(result.output)
    assert payload["valid"] is False
    shown = [
        f"{p['file']}:{p['line']}:{p['column']}: {p['field'] or '(file)'}: {p['message']}" for p in payload["problems"]
    ]
    assert shown == expected
    assert snapshot(root) == before


def test_load_desired_raises_with_every_problem(case: tuple[Path, list[str]], request: pytest.FixtureRequest) -> None:
    root, expected = case
    if request.node.callspec.params["case"] in STATE_ONLY:
        load_desired(root)  # the desired state itself is fine
        return
    with pytest.raises(SchemaError) as info:
        load_desired(root)
    assert [str(p) for p in info.value.problems] == expected
