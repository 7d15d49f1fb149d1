"""Entry points of loading: ``load_desired`` for a pass, ``validate`` for ``reconcile validate``.

The whole load step in order: read and parse every file (``sources``), check each against its schema
(``schema_check``), build the model from the clean parts (``config``, ``specs``, ``records``), run
the cross-file checks (``crossref``, ``paths``), and either return the ``DesiredState`` or raise
``SchemaError`` with every problem found. Nothing here writes anything.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from reconciler.errors import Problem, SchemaError
from reconciler.load.config import build_config, template_problems
from reconciler.load.crossref import (
    KnownIds,
    check_decisions,
    check_definitions,
    check_design,
    check_targets,
    check_unique_ids,
)
from reconciler.load.paths import check_spec_paths
from reconciler.load.records import build_decisions, build_definitions, build_design
from reconciler.load.sources import DECISIONS, DISPATCH_DIR, Sources, read_sources
from reconciler.load.specs import LocatedSpec, build_specs
from reconciler.load.state import recorded_ids
from reconciler.load.tree import WorkTree
from reconciler.model.desired import DesiredState
from reconciler.model.tree import Tree

Source = Tree | str | os.PathLike[str]
"""A tree, or the path of a project directory on this machine."""


@dataclass(frozen=True)
class Report:
    """What validation found."""

    problems: tuple[Problem, ...]
    """Every problem, sorted by file, line, column."""
    files: tuple[str, ...]
    """Project-relative paths of the files read."""
    desired: DesiredState | None
    """The desired state, when there is no problem."""

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def experiments(self) -> int:
        return 0 if self.desired is None else len(self.desired.experiments)


def as_tree(source: Source) -> Tree:
    if isinstance(source, (str, os.PathLike)):
        return WorkTree(os.fspath(source))
    return source


def _specs(sources: Sources, known: KnownIds, problems: list[Problem]) -> list[LocatedSpec]:
    located: list[LocatedSpec] = []
    known.complete = not any(f.startswith(DISPATCH_DIR + "/") and f != DECISIONS for f in sources.unparsed)
    for checked in sorted(sources.dispatch, key=lambda c: c.doc.file):
        built, found = build_specs(checked)
        located += built
        problems += found
        items = checked.doc.get(("experiments",))
        if not isinstance(items, list):
            known.complete = False  # not a mapping, or no list of experiments: could define anything
            continue
        defaults_ok = checked.clean(("defaults",))
        for i, item in enumerate(items):
            ident = item.get("id") if isinstance(item, dict) else None
            if isinstance(ident, str) and not (defaults_ok and checked.clean(("experiments", i))):
                known.uncertain.add(ident)
    return located


def inspect(source: Source, *, with_state: bool = True, revision: str | None = None) -> Report:
    """Load and check everything; never raises for bad input (problems are in the report)."""
    tree = as_tree(source)
    sources = read_sources(tree, with_state=with_state)
    problems = list(sources.problems)
    if sources.config is not None and sources.config.valid:
        problems += template_problems(sources.config)
    config = build_config(sources.config.doc.data) if sources.config and sources.config.valid else None

    known = KnownIds()
    located = _specs(sources, known, problems)
    problems += check_unique_ids(located, known)
    if config is not None:
        problems += check_targets(located, config)
    problems += check_spec_paths(located)

    decisions = build_decisions(sources.decisions)
    if sources.decisions is not None:
        problems += check_decisions(sources.decisions, decisions, known, functools.cache(lambda: recorded_ids(tree)))
    definitions = build_definitions(sources.definitions)
    if sources.definitions is not None:
        problems += check_definitions(sources.definitions, definitions, known)
    designs = []
    for checked in sources.designs:
        problems += check_design(checked, known)
        table = build_design(checked)
        if table is not None:
            designs.append(table)

    final = tuple(sorted(set(problems)))
    desired = None
    if not final and config is not None:
        desired = DesiredState(
            config=config,
            experiments=tuple(sorted((ls.spec for ls in located), key=lambda s: s.id)),
            decisions=tuple(d for _, d in decisions),
            designs=tuple(sorted(designs, key=lambda t: t.name)),
            definitions=tuple(d for _, d in definitions),
            revision=revision,
        )
    return Report(final, tuple(sources.files), desired)


def validate(source: Source) -> list[Problem]:
    """Every problem of the project's files (the state file included); empty when valid."""
    return list(inspect(source, with_state=True).problems)


def load_desired(source: Source, *, revision: str | None = None) -> DesiredState:
    """The desired state of a project; ``SchemaError`` carrying every problem when it is invalid.

    ``source`` is a ``Tree`` (the engine passes the committed tree) or a project directory.
    ``dispatch/state.json`` is not validated here (see ``load_state``), only read leniently so that
    decisions may name experiments that left the spec but are still recorded.
    """
    report = inspect(source, with_state=False, revision=revision)
    if report.desired is None:
        raise SchemaError(list(report.problems))
    return report.desired
