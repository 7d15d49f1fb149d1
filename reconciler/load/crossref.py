"""Cross-file checks on ids: unique after seed expansion, and every reference joins something.

Runs after the model is built from the clean parts of each file. Checks: experiment ids are unique
across all dispatch files (the problem names both places); named targets exist in the config;
design cells name a dispatch experiment and a row and col of their table; definitions join a
dispatch id (base id, expanded id, or the prefix ``<id>_``) and agree on the group where they name
one experiment; decisions have unique ids and name an experiment the spec or the recorded state
knows. A reference is only called dangling when every dispatch file could be read: an entry that
had its own errors counts as "maybe there", so one typo is not reported three times.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from reconciler.errors import Problem
from reconciler.load.schema_check import Checked
from reconciler.load.specs import LocatedSpec
from reconciler.model.config import Config
from reconciler.model.decisions import Decision, DecisionAction
from reconciler.model.design import Definition

_SEEDED_ID = re.compile(r"(?P<base>.+)_s[0-9]+")


@dataclass
class KnownIds:
    """The experiment ids the dispatch files define (as far as they could be read)."""

    specs: dict[str, LocatedSpec] = field(default_factory=dict)
    """Expanded id -> its spec (the first one, when an id is repeated)."""
    bases: dict[str, list[LocatedSpec]] = field(default_factory=dict)
    seeded: set[str] = field(default_factory=set)
    """``<base>`` of every spec id spelled ``<base>_s<N>`` (seeds that did not fold into one spec):
    a design cell naming ``<base>`` stands for them, as in ``export.tables``."""
    uncertain: set[str] = field(default_factory=set)
    """Raw ids of entries skipped for their own errors."""
    complete: bool = True
    """Every dispatch file was parsed (else no reference is called dangling)."""

    def has(self, exp_id: str) -> bool:
        return (
            not self.complete
            or exp_id in self.specs
            or exp_id in self.bases
            or exp_id in self.seeded
            or any(exp_id == u or exp_id.startswith(u + "_s") for u in self.uncertain)
        )

    def has_prefix(self, prefix: str) -> bool:
        start = prefix + "_"
        return self.has(prefix) or any(i.startswith(start) for i in (*self.specs, *self.uncertain))

    def hint(self, exp_id: str) -> str:
        close = difflib.get_close_matches(exp_id, [*self.specs, *self.bases], n=1, cutoff=0.8)
        return f" (did you mean '{close[0]}'?)" if close else ""


def check_unique_ids(located: Iterable[LocatedSpec], known: KnownIds) -> list[Problem]:
    """Fill ``known`` and report every id defined twice, naming the first place."""
    problems = []
    for ls in located:
        first = known.specs.setdefault(ls.spec.id, ls)
        seeded = _SEEDED_ID.fullmatch(ls.spec.id)
        if seeded:
            known.seeded.add(seeded["base"])
        if first is not ls:
            message = f"duplicate experiment id '{ls.spec.id}' (also at {first.where()})"
            problems.append(ls.doc.problem(ls.id_path, message))
        bucket = known.bases.setdefault(ls.spec.base_id, [])
        if not bucket or bucket[-1].doc is not ls.doc or bucket[-1].index != ls.index:
            bucket.append(ls)
    return problems


def check_targets(located: Iterable[LocatedSpec], config: Config) -> list[Problem]:
    names = config.target_names
    problems = []
    for ls in located:
        for k, target in enumerate(ls.spec.targets):
            if target not in names:
                message = f"unknown target '{target}' (config/reconciler.yaml defines: {', '.join(names)})"
                problems.append(ls.doc.problem((*ls.path("targets"), k), message))
    return problems


def check_design(checked: Checked, known: KnownIds) -> list[Problem]:
    doc = checked.doc
    problems: list[Problem] = []
    axes: dict[str, set[str]] = {}
    for axis in ("rows", "cols"):
        seen: dict[str, int] = {}
        items = doc.get((axis,))
        for i, item in enumerate(items if isinstance(items, list) else []):
            ident = item.get("id") if isinstance(item, dict) else None
            if not isinstance(ident, str) or not checked.clean((axis, i)):
                continue
            if ident in seen:
                where = doc.where((axis, seen[ident]))
                problems.append(doc.problem((axis, i, "id"), f"duplicate {axis[:-1]} id '{ident}' (also at {where})"))
            seen.setdefault(ident, i)
        axes[axis] = set(seen) if checked.clean((axis,)) else set()
    cells = doc.get(("cells",))
    for i, cell in enumerate(cells if isinstance(cells, list) else []):
        if not checked.clean(("cells", i)):
            continue
        exp_id = cell.get("exp_id") or ""
        if exp_id and not known.has(exp_id):
            message = f"'{exp_id}' is not an experiment of dispatch/*.yaml{known.hint(exp_id)}"
            problems.append(doc.problem(("cells", i, "exp_id"), message))
        for key, axis in (("row", "rows"), ("col", "cols")):
            if axes[axis] and cell[key] not in axes[axis]:
                problems.append(doc.problem(("cells", i, key), f"'{cell[key]}' is not a {key} id of this table"))
    return problems


def check_definitions(checked: Checked, entries: list[tuple[int, Definition]], known: KnownIds) -> list[Problem]:
    doc = checked.doc
    problems = []
    seen: dict[str, int] = {}
    for i, d in entries:
        if d.id in seen:
            where = doc.where((seen[d.id], "id"))
            problems.append(doc.problem((i, "id"), f"duplicate definition id '{d.id}' (also at {where})"))
        seen.setdefault(d.id, i)
        if not known.has_prefix(d.id):
            message = f"'{d.id}' matches no experiment of dispatch/*.yaml (as an id or as the prefix '{d.id}_')"
            problems.append(doc.problem((i, "id"), message + known.hint(d.id)))
            continue
        same = known.bases.get(d.id) or ([known.specs[d.id]] if d.id in known.specs else [])
        if same and all(ls.spec.group.value != d.group for ls in same):
            other = same[0]
            message = f"group '{d.group}' differs from '{other.spec.group.value}' of '{d.id}' ({other.where()})"
            problems.append(doc.problem((i, "group"), message))
    return problems


def check_decisions(
    checked: Checked, entries: list[tuple[int, Decision]], known: KnownIds, recorded: Callable[[], set[str]]
) -> list[Problem]:
    """``recorded``: the recorded ids (read only when a decision names an experiment that is not
    in the spec: with archived phases, that reads their files)."""
    doc = checked.doc
    problems = []
    seen: dict[str, int] = {}
    for i, d in entries:
        if d.id in seen:
            where = doc.where(("decisions", seen[d.id], "id"))
            problems.append(doc.problem(("decisions", i, "id"), f"duplicate decision id '{d.id}' (also at {where})"))
        seen.setdefault(d.id, i)
        if d.action is DecisionAction.APPROVE_STAGE or d.exp is None:
            continue
        exp = d.exp
        if exp in known.specs or exp in recorded():
            continue
        if exp in known.bases:  # a base id with seeds (an unseeded one is in known.specs)
            ids = sorted(i for i, ls in known.specs.items() if ls.spec.base_id == exp)
            more = ", ..." if len(ids) > 4 else ""
            message = f"'{exp}' has seeds: name one run ({', '.join(ids[:4])}{more})"
        elif known.has(exp):
            continue
        else:
            message = f"'{exp}' is not an experiment of dispatch/*.yaml or dispatch/state.json{known.hint(exp)}"
        problems.append(doc.problem(("decisions", i, "exp"), message))
    return problems
