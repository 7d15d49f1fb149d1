"""The shipped example project validates (skipped until it exists)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.commands.validate import validate
from reconciler.load import load_desired
from tests.load.project import snapshot

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "project"


@pytest.mark.skipif(not (EXAMPLE / "config" / "reconciler.yaml").is_file(), reason="examples/project not present")
def test_example_project_is_valid() -> None:
    before = snapshot(EXAMPLE / "dispatch")
    result = CliRunner().invoke(validate, [str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "valid (" in result.output.splitlines()[-1]
    assert load_desired(EXAMPLE).experiments
    assert snapshot(EXAMPLE / "dispatch") == before
