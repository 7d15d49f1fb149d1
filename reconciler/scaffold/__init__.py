"""Files that ``reconcile init`` (and ``reconcile import-seed``) write into a research project.

The templates are package data (``templates/*.tmpl``), so they ship in the wheel. A project does
not contain our schemas, so they are copied to ``config/schemas/`` and the
``# yaml-language-server: $schema=...`` lines point there (``.reconciler/`` is ignored by git, so
it cannot hold them).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from reconciler import __version__, schemas
from reconciler.model.spec import ID_PATTERN

PROJECT_TOKEN = "__PROJECT__"
REQUIREMENT_TOKEN = "__REQUIREMENT__"
"""Replaced by ``requirement()``: what the scaffolded workflow and hook comments install."""
DISTRIBUTION = "gitops-reconciler"
"""reconciler's name on PyPI (the import package and the command keep theirs; the PyPI name
``reconciler`` belongs to an unrelated project)."""
SCHEMA_DIR = "config/schemas"
"""Where a project keeps its copy of the schemas (relative to the project root)."""


TEMPLATES: dict[str, str] = {
    "config/reconciler.yaml": "config.yaml.tmpl",
    "dispatch/experiments.yaml": "experiments.yaml.tmpl",
    "dispatch/decisions.yaml": "decisions.yaml.tmpl",
    "experiments/scripts/example.py": "example.py.tmpl",
    ".pre-commit-config.yaml": "pre-commit-config.yaml.tmpl",
    ".github/workflows/reconcile.yml": "workflow.yml.tmpl",
}
"""Project path -> template name."""

GITIGNORE = ".gitignore"


CREATE = "create"
"""Write; an existing file is a conflict (replaced only with ``--force``)."""
MERGE = "merge"
"""Append the lines the existing file lacks (``.gitignore``)."""
KEEP = "keep"
"""Write only when absent; an existing file is left alone, even with ``--force``."""
REPLACE = "replace"
"""Always write (the caller kept what it replaces)."""


@dataclass(frozen=True)
class PlannedFile:
    path: str
    """Relative to the project root, ``/``-separated."""
    text: str
    mode: str = CREATE


def requirement(version: str = __version__) -> str:
    """The pip requirement of this release (``gitops-reconciler==0.1.0``); a development or local
    build, which PyPI cannot have, asks for the newest release instead."""
    return f"{DISTRIBUTION}=={version}" if re.fullmatch(r"\d+(\.\d+)*", version) else DISTRIBUTION


def render(text: str, project: str) -> str:
    """A template's text for ``project``."""
    return text.replace(PROJECT_TOKEN, project).replace(REQUIREMENT_TOKEN, requirement())


def template(name: str) -> str:
    return (resources.files(__package__) / "templates" / name).read_text(encoding="utf-8")


def schema_comment(kind: str, file_path: str) -> str:
    """The editor line for a project file at ``file_path`` pointing at the copied schema."""
    rel = posixpath.relpath(f"{SCHEMA_DIR}/{kind}.schema.json", posixpath.dirname(file_path) or ".")
    return f"# yaml-language-server: $schema={rel}"


def schema_files(mode: str = CREATE) -> list[PlannedFile]:
    """Copies of the shipped schemas for ``config/schemas/``."""
    src = schemas.schema_dir()
    return [
        PlannedFile(f"{SCHEMA_DIR}/{name}", (src / name).read_text(encoding="utf-8"), mode)
        for name in sorted(schemas.KINDS.values())
    ]


def project_name(text: str) -> str:
    """A valid project id derived from ``text`` (a directory name)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-._")
    return name if re.fullmatch(ID_PATTERN, name) else "project"


def gitignore_merge(existing: str, wanted: str) -> str:
    """``existing`` plus the patterns of ``wanted`` it lacks, under ``wanted``'s comment lines."""
    have = {line.strip() for line in existing.splitlines()}
    lines = wanted.splitlines()
    missing = [x for x in lines if x.strip() and not x.startswith("#") and x.strip() not in have]
    if not missing:
        return existing
    header = [x for x in lines if x.startswith("#")]
    sep = "" if not existing or existing.endswith("\n") else "\n"
    gap = "\n" if existing.strip() else ""
    return existing + sep + gap + "\n".join(header + missing) + "\n"


def gitignore() -> PlannedFile:
    return PlannedFile(GITIGNORE, template("gitignore.tmpl"), MERGE)


def plan_init(project: str) -> list[PlannedFile]:
    """Every file of a new project, rendered for ``project``."""
    files = [PlannedFile(path, render(template(name), project)) for path, name in TEMPLATES.items()]
    files += schema_files()
    files.append(gitignore())
    return files


def conflicts(root: Path, files: list[PlannedFile]) -> list[str]:
    """Paths that exist already and would be replaced without ``--force``."""
    return [f.path for f in files if f.mode == CREATE and (root / f.path).exists()]


def write(root: Path, files: list[PlannedFile]) -> list[str]:
    """Write ``files`` under ``root``; returns the paths that changed."""
    changed = []
    for f in files:
        target = root / f.path
        if f.mode == KEEP and target.exists():
            continue
        old = target.read_text(encoding="utf-8") if target.exists() else ""
        text = gitignore_merge(old, f.text) if f.mode == MERGE else f.text
        if target.exists() and text == old:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        with tmp.open("w", encoding="utf-8", newline="") as out:
            out.write(text)
        tmp.replace(target)
        changed.append(f.path)
    return changed
