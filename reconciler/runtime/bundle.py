"""The runtime as files to ship beside a project's code, so a target needs no reconciler install.

The controller appends ``bundle_files()`` to the code archive it ships (under ``BUNDLE_DIR``), and
the launch wrapper puts ``<code dir>/BUNDLE_DIR`` first on ``PYTHONPATH``: a training script's
``import reconciler.runtime`` then finds this package and a stub ``reconciler/__init__.py`` with
nothing else of the controller (no yaml, git, asyncssh, click).
"""

from __future__ import annotations

import io
import sys
import tarfile
import time
from pathlib import Path

BUNDLE_DIR = ".reconciler-runtime"
_HERE = Path(__file__).resolve().parent
_STUB = '''"""reconciler: only the job-side runtime (``reconciler.runtime``), shipped with the code."""

__version__ = {version!r}
'''


def bundle_files() -> dict[str, bytes]:
    """Archive path (relative to the bundle dir) -> content: the stub package and the runtime's modules."""
    version = getattr(sys.modules.get("reconciler"), "__version__", "0")
    files = {"reconciler/__init__.py": _STUB.format(version=version).encode()}
    for path in sorted(_HERE.glob("*.py")):
        files[f"reconciler/runtime/{path.name}"] = path.read_bytes()
    return files


def write_bundle(dest: str | Path) -> Path:
    """Write the bundle under ``dest`` (which then goes on ``PYTHONPATH``); returns ``dest``."""
    root = Path(dest)
    for rel, data in bundle_files().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def append_to_tar(tar_path: str | Path, prefix: str = BUNDLE_DIR) -> None:
    """Append the bundle to an uncompressed tar (the code archive) under ``prefix/``."""
    now = int(time.time())
    with tarfile.open(tar_path, "a") as tar:
        for rel, data in bundle_files().items():
            info = tarfile.TarInfo(f"{prefix}/{rel}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = now
            tar.addfile(info, io.BytesIO(data))
