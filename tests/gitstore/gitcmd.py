"""Test helpers: drive git as a person would, through the ``git`` command line."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(cwd: Path | str, *args: str) -> str:
    """Run ``git <args>`` in ``cwd``; return stdout without the trailing newline; fail loudly."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done.stdout.rstrip("\n")


def write(root: Path, relpath: str, text: str) -> Path:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def commit_files(root: Path, files: dict[str, str], message: str = "person commit") -> str:
    """Write ``files``, commit them as the person; return the new HEAD sha."""
    for relpath, text in files.items():
        write(root, relpath, text)
    git(root, "add", "--", *files)
    git(root, "commit", "--quiet", "-m", message)
    return git(root, "rev-parse", "HEAD")


def init_repo(root: Path, files: dict[str, str] | None = None) -> Path:
    """A fresh repository on branch ``main``, with one commit of ``files`` when given."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "--quiet", "--initial-branch=main")
    if files:
        commit_files(root, files, "initial")
    return root


def porcelain(root: Path) -> str:
    return git(root, "status", "--porcelain=v1", "--untracked-files=all")
