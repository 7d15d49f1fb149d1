"""Random damage to a valid project never makes ``validate`` raise: exit 0, or 2 with positions."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.commands.validate import validate
from reconciler.load import inspect
from tests.load.project import FILES, snapshot, write_project

PROBLEM_LINE = re.compile(r"^[^\s:][^:]*:\d+:\d+: ")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path] if path else []
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out += _paths(child, (*path, i))
    return out


def _edit(data: Any, path: tuple[Any, ...], new: Any, delete: bool) -> Any:
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return data


@st.composite
def damaged(draw: st.DrawFn) -> dict[str, str]:
    files = dict(FILES)
    for _ in range(draw(st.integers(1, 3))):
        rel = draw(st.sampled_from(sorted(files)))
        text = files[rel]
        how = draw(st.sampled_from(["delete", "retype", "garbage", "truncate"]))
        if how in ("delete", "retype"):
            is_json = rel.endswith(".json")
            try:
                data = json.loads(text) if is_json else yaml.safe_load(text)
            except (ValueError, yaml.YAMLError):
                continue  # an earlier round already broke the text
            paths = _paths(data)
            if not paths:
                continue
            path = paths[draw(st.integers(0, len(paths) - 1))]
            data = _edit(data, path, draw(json_values), how == "delete")
            text = json.dumps(data) if is_json else yaml.safe_dump(data, allow_unicode=True)
        elif how == "garbage":
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.text(max_size=20)) + text[at:]
        else:
            text = text[: draw(st.integers(0, len(text)))]
        files[rel] = text
    return files


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=damaged())
def test_validate_never_raises_on_damaged_files(files: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = write_project(Path(tmp) / "proj", files)
        before = snapshot(root)
        result = CliRunner().invoke(validate, [str(root)])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        assert result.exit_code in (0, 2), result.output
        if result.exit_code == 2:
            assert any(PROBLEM_LINE.match(line) for line in result.output.splitlines()), result.output
        report = inspect(root)
        assert report.valid == (result.exit_code == 0)
        assert all(p.line >= 1 and p.column >= 1 for p in report.problems)
        assert snapshot(root) == before
