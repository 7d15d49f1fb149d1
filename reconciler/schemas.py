"""The JSON Schemas of the file contract, read from one source.

The schemas live in the repository's top-level ``schemas/`` folder. A built wheel carries the same
files as ``reconciler/schemas/`` (hatch force-include); an editable or source install reads them
from ``<repo>/schemas/``. Nothing is copied by hand, so the two can never disagree.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError

KINDS: dict[str, str] = {
    "config": "config.schema.json",
    "dispatch": "dispatch.schema.json",
    "decisions": "decisions.schema.json",
    "definitions": "definitions.schema.json",
    "design": "design.schema.json",
    "state": "state.schema.json",
    "env": "env.schema.json",
    "sidecar": "sidecar.schema.json",
}
"""Schema kind -> file name inside the schema folder."""


class SchemaMissing(ReconcilerError):
    """The package was installed without its schemas (a broken build)."""


def schema_files() -> dict[str, str]:
    """Kind -> schema file name, for every kind of the file contract."""
    return dict(KINDS)


def schema_id(kind: str) -> str:
    """The ``$id`` every schema of ``kind`` carries."""
    return f"urn:reconciler:schema:{kind}:1"


@cache
def schema_dir() -> Path:
    """The folder holding the schemas: in the wheel first, then the source tree."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "schemas", here.parent / "schemas"):
        if (candidate / KINDS["config"]).is_file():
            return candidate
    raise SchemaMissing(f"no schemas next to {here} (looked in schemas/ and ../schemas/)")


def schema_path(kind: str) -> Path:
    if kind not in KINDS:
        raise KeyError(f"unknown schema kind {kind!r}")
    return schema_dir() / KINDS[kind]


@cache
def load_schema(kind: str) -> dict[str, Any]:
    """The parsed schema of ``kind`` (cached; do not mutate the result)."""
    path = schema_path(kind)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaMissing(f"cannot read schema {path.name}: {exc}") from exc
    if not isinstance(data, dict):
        raise SchemaMissing(f"schema {path.name} is not a JSON object")
    return data
