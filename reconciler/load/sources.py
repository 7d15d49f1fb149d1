"""Find, read, parse and schema-check every file of the desired state in a ``Tree``.

The first half of loading: the result holds each file as a checked ``Document`` and every problem
found so far (missing or unreadable files, malformed text, schema errors). Model building and the
cross-file checks come after, in ``reconciler.load.desired``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.errors import Problem
from reconciler.load.document import Document, file_problem
from reconciler.load.jsonpos import parse_json
from reconciler.load.schema_check import Checked, check
from reconciler.load.tree import UnreadableFileError
from reconciler.load.yamlpos import parse_yaml
from reconciler.model.tree import Tree

CONFIG = "config/reconciler.yaml"
DISPATCH_DIR = "dispatch"
DECISIONS = "dispatch/decisions.yaml"
DEFINITIONS = "experiments/definitions.json"
DESIGN_DIR = "experiments"
DESIGN_SUFFIX = "_design.json"
STATE = "dispatch/state.json"


@dataclass
class Sources:
    """Every file of the desired state, parsed and checked (``None`` or absent when missing)."""

    config: Checked | None = None
    dispatch: list[Checked] = field(default_factory=list)
    decisions: Checked | None = None
    definitions: Checked | None = None
    designs: list[Checked] = field(default_factory=list)
    state: Checked | None = None
    files: list[str] = field(default_factory=list)
    """Files read, in the order read."""
    unparsed: list[str] = field(default_factory=list)
    """Files found but not readable or not parseable (what they hold is unknown)."""
    problems: list[Problem] = field(default_factory=list)


def read_document(tree: Tree, relpath: str, problems: list[Problem]) -> Document | None:
    """Read and parse one file; ``None`` when absent or unparseable (problems are appended)."""
    try:
        text = tree.read_text(relpath)
    except UnreadableFileError as exc:
        problems.append(file_problem(relpath, f"cannot read: {exc.reason}", exc.line, exc.column))
        return None
    if text is None:
        return None
    parse = parse_json if relpath.endswith(".json") else parse_yaml
    doc, found = parse(text, relpath)
    problems.extend(found)
    return doc


def _read(tree: Tree, relpath: str, kind: str, sources: Sources) -> Checked | None:
    doc = read_document(tree, relpath, sources.problems)
    if doc is None:
        if any(p.file == relpath for p in sources.problems):
            sources.files.append(relpath)
            sources.unparsed.append(relpath)
        return None
    sources.files.append(relpath)
    checked = check(doc, kind)
    sources.problems.extend(checked.problems)
    return checked


def _exists(tree: Tree, relpath: str) -> bool:
    try:
        return tree.read_text(relpath) is not None
    except UnreadableFileError:
        return True


def _names(tree: Tree, dirpath: str, sources: Sources) -> list[str]:
    try:
        return tree.list(dirpath)
    except UnreadableFileError as exc:
        sources.problems.append(file_problem(dirpath, f"cannot list: {exc.reason}"))
        return []


def read_sources(tree: Tree, *, with_state: bool = False) -> Sources:
    """Read the config, dispatch files, decisions, definitions, design tables (and the state)."""
    sources = Sources()
    sources.config = _read(tree, CONFIG, "config", sources)
    if sources.config is None and not any(p.file == CONFIG for p in sources.problems):
        hint = " (found config/reconciler.yml: rename it to .yaml)" if _exists(tree, "config/reconciler.yml") else ""
        sources.problems.append(file_problem(CONFIG, f"missing required file{hint}"))
    decisions_name = DECISIONS.rsplit("/", 1)[1]
    for name in _names(tree, DISPATCH_DIR, sources):
        relpath = f"{DISPATCH_DIR}/{name}"
        if name.endswith(".yml"):
            sources.problems.append(file_problem(relpath, "ignored: dispatch files must end in .yaml"))
        elif name.endswith(".yaml") and name != decisions_name:
            checked = _read(tree, relpath, "dispatch", sources)
            if checked is not None:
                sources.dispatch.append(checked)
    sources.decisions = _read(tree, DECISIONS, "decisions", sources)
    sources.definitions = _read(tree, DEFINITIONS, "definitions", sources)
    for name in _names(tree, DESIGN_DIR, sources):
        if name.endswith(DESIGN_SUFFIX):
            checked = _read(tree, f"{DESIGN_DIR}/{name}", "design", sources)
            if checked is not None:
                sources.designs.append(checked)
    if with_state:
        sources.state = _read(tree, STATE, "state", sources)
    return sources
