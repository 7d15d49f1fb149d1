"""``reconciler.runtime`` is importable by a training script with the standard library alone."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import reconciler.results
from reconciler import runtime
from reconciler.runtime import bundle

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("yaml", "git", "asyncssh", "click", "rich", "jsonschema", "watchdog", "wandb", "huggingface_hub")

PROBE = """
import json, sys
import reconciler.runtime as rt
rt.add_standard_args
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1].split(",")))
ours = sorted(m for m in sys.modules if m.startswith("reconciler") and not m.startswith("reconciler.runtime"))
print(json.dumps({"loaded": loaded, "ours": ours, "file": rt.__file__}))
"""


def probe(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, *args, "-c", PROBE, ",".join(HEAVY)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    found: dict[str, object] = json.loads(proc.stdout)
    return found


def test_importing_the_runtime_pulls_in_none_of_the_controllers_dependencies() -> None:
    found = probe([], cwd=REPO)
    assert found["loaded"] == []
    assert found["ours"] == ["reconciler"]  # the parent package only, nothing beside it


def test_the_shipped_bundle_imports_without_site_packages(tmp_path: Path) -> None:
    dest = bundle.write_bundle(tmp_path / "bundle")
    found = probe(["-S", "-B"], cwd=tmp_path, env={"PYTHONPATH": str(dest)})
    assert found["loaded"] == []
    assert str(found["file"]).startswith(str(dest))


def test_the_bundle_is_appended_to_a_code_archive(tmp_path: Path) -> None:
    archive = tmp_path / "code.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(REPO / "examples" / "project" / "README.md", arcname="README.md")
    bundle.append_to_tar(archive)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        tar.extractall(tmp_path / "code", filter="data")
    assert "README.md" in names
    assert f"{bundle.BUNDLE_DIR}/reconciler/__init__.py" in names
    assert f"{bundle.BUNDLE_DIR}/reconciler/runtime/__init__.py" in names
    found = probe(["-S", "-B"], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "code" / bundle.BUNDLE_DIR)})
    assert found["loaded"] == []


def test_the_bundle_holds_every_runtime_module() -> None:
    files = bundle.bundle_files()
    shipped = {name.rsplit("/", 1)[1] for name in files if name.startswith("reconciler/runtime/")}
    assert shipped == {p.name for p in (REPO / "reconciler" / "runtime").glob("*.py")}


def test_the_column_tuple_cannot_drift_from_the_controllers() -> None:
    assert runtime.COLUMNS == reconciler.results.COLUMNS
    assert runtime.GROUPS == reconciler.results.GROUPS
