"""The exported files, byte for byte, for a fixed status and fixed result files.

Regenerate after an intended change with ``RECONCILER_REGOLD=1 pytest tests/export/test_golden.py``
and review the diff of ``tests/export/golden/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.export.guard import completeness
from reconciler.export.render import document
from reconciler.export.results import all_results_text, read_result_rows
from reconciler.export.synthesis import Criteria, markdown, synthesize
from reconciler.export.tables import derive_tables
from reconciler.load import load_desired
from reconciler.model.status import Status
from tests.export.builders import example_repo, populate

GOLDEN = Path(__file__).parent / "golden"


def check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("RECONCILER_REGOLD") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


@pytest.mark.parametrize("partial", [False, True], ids=["complete", "partial"])
def test_exported_files(tmp_path: Path, partial: bool) -> None:
    project = example_repo(tmp_path / "project")
    statuses = {"mlp_moons_s2": Status.ON_HOLD, "logreg_blobs_s1": Status.FAILED} if partial else {}
    state = populate(project, statuses)
    desired = load_desired(project)
    files = read_result_rows(project, state)
    (view,) = derive_tables(desired, state, files.rows)
    guard = completeness(desired, state, files.rows, files.problems)
    suffix = "_partial" if partial else ""
    check(f"all_results{suffix}.csv", all_results_text(files.rows))
    check(f"pilot_design{suffix}.md", document(view))
    check(f"pilot_synthesis{suffix}.md", markdown(synthesize([view]), guard, Criteria(), None))
