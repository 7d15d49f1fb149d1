"""The experiments table a page at a time, from an index built once per snapshot (issue 20).

At 100,000 experiments every row at once (``/api/snapshot``: 46 MB) took minutes to serve and to
draw. ``Index`` is built once per ``Snapshot``: the rows (``views.experiment_rows``, the one
builder of them), each row's lowercased search text, the filter values with their counts
(``facets``), and, per sort key, the order of the rows (made when first asked for). A request is
a ``Query``: filters, search, sort, and ``offset``/``limit``; the answer of
``GET /api/experiments?offset=&limit=`` is ``{total, offset, limit, sort, commit, items}``, where
``total`` counts the rows that match and ``items`` are rows as the unpaged form has them.
Without ``offset`` and ``limit`` the route answers as it always did: every matching row, a list.

``Pages`` keeps the index and the encoded answers of the newest snapshots (a commit's summary,
tables, escalations, targets and plots are encoded once, not per request); ``warm`` builds what
the page's first paint asks for, ahead of the page (at start and on each new commit).
"""

from __future__ import annotations

import json
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.dashboard import views
from reconciler.dashboard.source import Snapshot
from reconciler.model.jsontext import within_limits

FILTERS = ("status", "group", "stage", "target", "phase")
"""Exact filters (each repeatable: any of the values)."""
SEARCHED = ("id", "method", "dataset", "notes", "failure_class")
"""What ``q`` (a case-insensitive substring) is looked for in."""
SORTS = ("id", "status", "method", "dataset", "group", "phase", "stage", "target", "attempt", "started", "finished")
"""Sort keys; ``-key`` reverses. Ties keep the id order; rows without a value come last."""
DEFAULT_LIMIT = 100
MAX_LIMIT = 500
"""A larger ``limit`` is cut to this (the answer's ``limit`` says so)."""
PARAMETERS = frozenset({*FILTERS, "q", "sort", "offset", "limit", "token"})
"""What ``/api/experiments`` takes (``token``: the dashboard's own, checked before)."""
SINGLE = ("q", "sort", "offset", "limit")
_STATUS_RANK = {s: i for i, s in enumerate(views.STATUS_ORDER)}
_SELECTIONS = 16
"""Filtered and sorted selections kept per index (paging through one costs a slice)."""


class BadQuery(ValueError):
    """A query parameter that is unknown, repeated or out of range (HTTP 400)."""

    status = 400


@dataclass(frozen=True)
class Query:
    filters: tuple[tuple[str, frozenset[str]], ...] = ()
    q: str = ""
    sort: str = "id"
    descending: bool = False
    offset: int = 0
    limit: int | None = None
    """``None``: the unpaged form (every matching row, as a list)."""

    @property
    def selection(self) -> tuple[object, ...]:
        return (self.filters, self.q, self.sort, self.descending)

    @property
    def sort_text(self) -> str:
        return ("-" if self.descending else "") + self.sort


def parse_query(query: Mapping[str, Sequence[str]]) -> Query:
    """The ``Query`` of ``/api/experiments``' parameters (``parse_qs`` form); ``BadQuery`` says
    what is wrong with them."""
    unknown = sorted(set(query) - PARAMETERS)
    if unknown:
        raise BadQuery(f"unknown parameter {unknown[0]!r}; known: {', '.join(sorted(PARAMETERS - {'token'}))}")
    for key in SINGLE:
        if len(query.get(key) or ()) > 1:
            raise BadQuery(f"{key} is given {len(query[key])} times; give it once")
    sort = _one(query, "sort") or "id"
    descending = sort.startswith("-")
    key = sort[1:] if descending else sort
    if key not in SORTS:
        raise BadQuery(f"sort {sort!r} is not one of {', '.join(SORTS)} (or -key for the reverse)")
    paged = "offset" in query or "limit" in query
    offset = _count(query, "offset", 0)
    limit = min(_count(query, "limit", DEFAULT_LIMIT), MAX_LIMIT) if paged else None
    filters = tuple((k, frozenset(query[k])) for k in FILTERS if query.get(k))
    return Query(filters, (_one(query, "q") or "").lower(), key, descending, offset, limit)


def _one(query: Mapping[str, Sequence[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _count(query: Mapping[str, Sequence[str]], key: str, default: int) -> int:
    text = _one(query, key)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise BadQuery(f"{key} must be a whole number >= 0, not {text!r}")
    return int(text)


class Index:
    """The rows of one snapshot, with what filtering, searching and sorting them needs."""

    def __init__(self, snap: Snapshot) -> None:
        self.commit = snap.commit
        self.rows = experiment_rows(snap)
        self.by_id = {r["id"]: r for r in self.rows}
        self._text = ["\0".join(str(r.get(f) or "") for f in SEARCHED).lower() for r in self.rows]
        self.facets = facets(self.rows)
        self._lock = threading.Lock()
        self._orders: dict[str, list[int]] = {}
        self._values: dict[str, list[str]] = {}
        self._selections: OrderedDict[tuple[object, ...], list[int]] = OrderedDict()

    def order(self, key: str, descending: bool = False) -> list[int]:
        """Row positions by ``key`` (ties in id order, rows without a value last)."""
        with self._lock:
            if key not in self._orders:
                self._orders[key] = _order(self.rows, key)
            ascending = self._orders[key]
        if not descending:
            return ascending
        present = [i for i in ascending if self.rows[i].get(key) is not None]
        missing = [i for i in ascending if self.rows[i].get(key) is None]
        return present[::-1] + missing

    def values(self, key: str) -> list[str]:
        """Each row's ``key`` as the filters compare it (``str``; ``None`` is ``"None"``)."""
        with self._lock:
            if key not in self._values:
                self._values[key] = [str(r.get(key)) for r in self.rows]
            return self._values[key]

    def select(self, query: Query) -> list[int]:
        """The positions of the rows ``query`` matches, in its order."""
        with self._lock:
            found = self._selections.get(query.selection)
            if found is not None:
                self._selections.move_to_end(query.selection)
                return found
        picked = self.order(query.sort, query.descending)
        for key, wanted in query.filters:
            values = self.values(key)
            picked = [i for i in picked if values[i] in wanted]
        if query.q:
            text, q = self._text, query.q
            picked = [i for i in picked if q in text[i]]
        with self._lock:
            self._selections[query.selection] = picked
            while len(self._selections) > _SELECTIONS:
                self._selections.popitem(last=False)
        return picked

    def answer(self, query: Query) -> dict[str, Any] | list[dict[str, Any]]:
        """The page ``query`` asks for; the unpaged form: every matching row."""
        picked = self.select(query)
        if query.limit is None:
            return [self.rows[i] for i in picked]
        items = picked[query.offset : query.offset + query.limit]
        return {
            "total": len(picked),
            "offset": query.offset,
            "limit": query.limit,
            "sort": query.sort_text,
            "commit": self.commit,
            "items": [self.rows[i] for i in items],
        }


def experiment_rows(snap: Snapshot) -> list[dict[str, Any]]:
    """The rows of a snapshot (``views.experiment_rows``, in id order)."""
    return views.experiment_rows(snap)


def _order(rows: list[dict[str, Any]], key: str) -> list[int]:
    if key == "id":
        return list(range(len(rows)))  # the rows are in id order
    if key == "status":
        return sorted(range(len(rows)), key=lambda i: _STATUS_RANK.get(rows[i]["status"], len(_STATUS_RANK)))
    present = [i for i in range(len(rows)) if rows[i].get(key) is not None]
    missing = [i for i in range(len(rows)) if rows[i].get(key) is None]
    return sorted(present, key=lambda i: _sortable(rows[i][key])) + missing


def _sortable(value: object) -> tuple[int, float, str]:
    """Numbers before text, each in its own order (a mixed column never raises)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def facets(rows: list[dict[str, Any]]) -> dict[str, list[list[Any]]]:
    """Per filter, the values rows have (``[[value, rows], ...]``, in value order; blanks left
    out): the options of the page's filters."""
    out: dict[str, list[list[Any]]] = {}
    for key in FILTERS:
        counts = Counter(str(r[key]) for r in rows if r.get(key) is not None and r.get(key) != "")
        out[key] = [[v, counts[v]] for v in sorted(counts, key=_facet_order(key))]
    return out


def _facet_order(key: str) -> Callable[[str], tuple[int, float, str]]:
    if key == "status":
        return lambda v: (0, float(_STATUS_RANK.get(v, len(_STATUS_RANK))), v)
    return lambda v: _sortable(int(v)) if v.lstrip("-").isdigit() else _sortable(v)


def encode(doc: Any) -> bytes:
    """JSON as the API sends it: UTF-8, keys sorted, NaN and infinities as null."""
    try:
        text = json.dumps(doc, ensure_ascii=False, allow_nan=False, sort_keys=True)
    except ValueError:  # a NaN from a job's sidecar: valid JSON says null
        text = json.dumps(within_limits(doc), ensure_ascii=False, allow_nan=False, sort_keys=True)
    return text.encode()


CACHED: dict[str, Callable[[Snapshot, Index], Any]] = {
    "summary": lambda s, ix: {**views.summary(s), "facets": ix.facets},
    "tables": lambda s, _ix: views.tables(s),
    "escalations": lambda s, _ix: views.escalations(s),
    "targets": lambda s, _ix: views.targets(s),
    "plots": lambda s, _ix: views.plots(s),
    "snapshot": lambda s, ix: views.snapshot_doc(s, ix.rows),
}
"""The routes answered from a snapshot alone, each encoded once per snapshot (``Pages.encoded``)."""
FIRST_PAINT = ("summary", "tables")
"""What ``warm`` builds: the page's first request and its default view (``#/tables``); the
experiments' first page needs the index, built with the summary."""
_KEPT = 2
"""Snapshots whose index and answers are kept (a request may still hold the previous one)."""


class Pages:
    """The index and the encoded answers of the newest snapshots (thread-safe; each built once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: list[tuple[Snapshot, _Built]] = []

    def _built(self, snap: Snapshot) -> _Built:
        with self._lock:
            for kept, built in self._kept:
                if kept is snap:
                    return built
            built = _Built(snap)
            self._kept = [(snap, built), *self._kept][:_KEPT]
            return built

    def index(self, snap: Snapshot) -> Index:
        return self._built(snap).index()

    def encoded(self, snap: Snapshot, route: str) -> bytes:
        """The JSON of ``route`` (a key of ``CACHED``) for ``snap``."""
        return self._built(snap).encoded(route)

    def warm(self, snap: Snapshot) -> None:
        """Build what the page's first paint asks for (the index, the summary, the tables)."""
        for route in FIRST_PAINT:
            self.encoded(snap, route)


class _Built:
    """One snapshot's index and encoded answers, each built once (by the first thread to ask)."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self._lock = threading.Lock()
        self._index: Index | None = None
        self._encoded: dict[str, bytes] = {}

    def index(self) -> Index:
        with self._lock:
            if self._index is None:
                self._index = Index(self.snap)
            return self._index

    def encoded(self, route: str) -> bytes:
        index = self.index()
        with self._lock:
            found = self._encoded.get(route)
        if found is None:
            found = encode(CACHED[route](self.snap, index))
            with self._lock:
                if route != "snapshot":  # tens of MB at 100,000 experiments: not kept
                    self._encoded[route] = found
        return found
