"""Fast construction and plain-dict views of frozen, plain dataclasses.

Loading a state file builds thousands of ``StatusEntry`` and ``Attempt`` values; the generated
``__init__`` of a frozen dataclass assigns each field through ``object.__setattr__``, which
dominates that load. ``build`` fills the instance dict directly (same defaults, same check for
missing fields); ``plain`` and ``known`` map between instances and dicts by field name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

_T = TypeVar("_T")
_Defaults = tuple[dict[str, Any], tuple[tuple[str, Any], ...], frozenset[str]]
"""(plain defaults, default factories, fields without a default) of a dataclass."""

_FIELDS: dict[type, tuple[tuple[str, ...], frozenset[str], _Defaults]] = {}
"""Per dataclass: field names in order, as a set, and defaults (``dataclasses.fields`` is slow
to call once per entry of a large state file)."""


def _fields(cls: type) -> tuple[tuple[str, ...], frozenset[str], _Defaults]:
    known = _FIELDS.get(cls)
    if known is None:
        plain: dict[str, Any] = {}
        factories: list[tuple[str, Any]] = []
        required: set[str] = set()
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                plain[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                factories.append((f.name, f.default_factory))
            else:
                required.add(f.name)
        names = tuple(f.name for f in dataclasses.fields(cls))
        known = _FIELDS[cls] = (names, frozenset(names), (plain, tuple(factories), frozenset(required)))
    return known


def _names(cls: type) -> tuple[str, ...]:
    return _fields(cls)[0]


def name_set(cls: type) -> frozenset[str]:
    return _fields(cls)[1]


def build(cls: type[_T], kw: dict[str, Any]) -> _T:
    """``cls(**kw)`` for frozen, plain dataclasses (the status file's), several times faster:
    their generated ``__init__`` only assigns each field through ``object.__setattr__``, which
    dominates loading a state file of thousands of entries. ``kw`` holds known fields only."""
    plain, factories, required = _fields(cls)[2]
    missing = required - kw.keys()
    if missing:
        raise TypeError(f"{cls.__name__} needs {', '.join(sorted(missing))}")
    obj = object.__new__(cls)
    values = obj.__dict__
    values.update(plain)
    for name, factory in factories:
        if name not in kw:
            values[name] = factory()
    values.update(kw)
    return obj


def plain(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in _names(type(obj))}


def known(cls: type, d: Mapping[str, Any]) -> dict[str, Any]:
    """Keep the keys ``cls`` knows; unknown seed fields are dropped (the seed had many)."""
    names = name_set(cls)
    if names.issuperset(d.keys()):  # the usual case: a file the reconciler wrote
        return dict(d)
    return {k: v for k, v in d.items() if k in names}


__all__ = ["build", "known", "name_set", "plain"]
