"""The one way tests build a research project: files written into a fresh directory, a git
repository on ``main``, the desired state committed with a test identity.

Each family of tests keeps its own *content* (``tests.engine.project``: a tiny job on the local
target; ``tests.engine.batch_project``: the example on a batch target; ``tests.truth.gpu_project``:
fake GPUs; ``tests.failures.project``: the example's scripts over SSH; the dashboard's pilot) and
builds it here, so a change to how a project is laid out or committed is made once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

IDENTITY = ("-c", "user.name=t", "-c", "user.email=t@localhost")
"""``git -c`` options that commit as the test user, whatever the machine's git config says."""

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@localhost",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@localhost",
}
"""The same identity as environment variables (for commands that commit on their own)."""

IGNORE = ".reconciler/\n__pycache__/\n"


def git(cwd: Path, *args: str) -> str:
    """``git <args>`` in ``cwd`` as the test user; its stdout, stripped. Fails the test on error."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed in {cwd}: {done.stderr.strip()}")
    return done.stdout.strip()


def commit_project(
    project: Path,
    files: Mapping[str, str],
    *,
    copies: Mapping[str, Path] | None = None,
    message: str = "desired state",
) -> Path:
    """Write ``files`` (path in the project -> text) and ``copies`` (path -> a file to copy) into
    ``project`` (created if missing), add a ``.gitignore`` for the reconciler's local files unless
    given or present, then ``git init -b main`` and commit everything. Returns ``project``."""
    project.mkdir(parents=True, exist_ok=True)
    defaults = {} if (project / ".gitignore").exists() else {".gitignore": IGNORE}
    for name, text in {**defaults, **files}.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for name, source in (copies or {}).items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, path)
    if not (project / ".git").exists():
        git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-qm", message)
    return project


def recorded(project: Path) -> dict[str, dict[str, Any]]:
    """Every recorded entry as on disk, by id: ``dispatch/state.json``'s and those of the phases it
    lists as archived (``dispatch/archive/<phase>.json``; a live entry wins). Empty before the
    first pass."""
    path = project / "dispatch" / "state.json"
    if not path.exists():
        return {}
    return _with_archived(path.read_text(), lambda rel: (project / rel).read_text())


def _with_archived(text: str, read: Callable[[str], str]) -> dict[str, dict[str, Any]]:
    doc = json.loads(text)
    out = {e["id"]: e for e in doc["experiments"]}
    for record in (doc.get("archived") or {}).values():
        for e in json.loads(read(record["file"]))["experiments"]:
            out.setdefault(e["id"], e)
    return out


def committed(project: Path, rev: str = "HEAD") -> dict[str, dict[str, Any]]:
    """The entries of ``dispatch/state.json`` as committed at ``rev``, by id."""
    text = git(project, "show", f"{rev}:dispatch/state.json")
    return _with_archived(text, lambda rel: git(project, "show", f"{rev}:{rel}"))
