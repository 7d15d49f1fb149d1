"""``dashboard.pages``: the experiments table a page at a time (issue 20), on a snapshot built by
hand (pure: no server; the route itself is tested on a real one in ``test_paging_api.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.dashboard import views
from reconciler.dashboard.pages import MAX_LIMIT, BadQuery, Index, Pages, parse_query
from reconciler.dashboard.source import Snapshot
from reconciler.model.status import StateFile, Status, StatusEntry

STATUSES = (Status.DONE, Status.RUNNING, Status.FAILED, Status.PENDING)
N = 250


def entry(i: int) -> StatusEntry:
    status = STATUSES[i % 4]
    return StatusEntry(
        id=f"exp{i:03d}",
        status=status,
        method=f"m{i % 3}",
        dataset="moons" if i % 2 else "blobs",
        group="baseline" if i % 5 == 0 else "main",
        stage=1 + i % 2,
        phase=f"phase{i // 100}",
        target=None if status is Status.PENDING else ("gpu1" if i % 3 else "gpu2"),
        attempt=0 if status is Status.PENDING else 1,
        started=None if status is Status.PENDING else f"2026-12-01T{i % 24:02d}:{i % 60:02d}:00+00:00",
        notes="CUDA out of memory" if status is Status.FAILED and i % 8 == 2 else "",
        failure_class="cuda_oom" if status is Status.FAILED and i % 8 == 2 else None,
    )


@pytest.fixture(scope="module")
def snap() -> Snapshot:
    entries = tuple(entry(i) for i in reversed(range(N)))  # not in id order: the rows are
    return Snapshot(Path("."), "c0ffee", "2026-12-05T00:00:00+00:00", None, (), StateFile("p", entries))


@pytest.fixture(scope="module")
def index(snap: Snapshot) -> Index:
    return Index(snap)


def page(index: Index, **params: str | list[str]) -> dict[str, Any]:
    query = {k: v if isinstance(v, list) else [v] for k, v in params.items()}
    answer = index.answer(parse_query(query))
    assert isinstance(answer, dict)
    return answer


def ids(answer: dict[str, Any]) -> list[str]:
    return [r["id"] for r in answer["items"]]


def test_pages_cover_every_row_once_in_id_order(snap: Snapshot, index: Index) -> None:
    everything = views.experiment_rows(snap)
    seen: list[dict[str, Any]] = []
    for offset in range(0, N, 100):
        answer = page(index, offset=str(offset), limit="100")
        assert answer["total"] == N and answer["offset"] == offset and answer["limit"] == 100
        assert answer["sort"] == "id" and answer["commit"] == "c0ffee"
        seen += answer["items"]
    assert seen == everything  # the rows as the unpaged form has them, each once
    assert [r["id"] for r in seen] == sorted(f"exp{i:03d}" for i in range(N))
    assert page(index, offset="1000", limit="10") == {**page(index, offset="1000", limit="10"), "items": []}
    assert page(index, offset="0", limit="0")["items"] == [] and page(index, limit="0")["total"] == N


def test_the_unpaged_form_is_the_old_list(index: Index) -> None:
    rows = index.answer(parse_query({}))
    assert isinstance(rows, list) and len(rows) == N
    failed = index.answer(parse_query({"status": ["failed"]}))
    assert isinstance(failed, list) and {r["status"] for r in failed} == {"failed"} and len(failed) == 62


def test_default_and_capped_limit(index: Index) -> None:
    assert page(index, offset="0")["limit"] == 100 and len(page(index, offset="0")["items"]) == 100
    big = page(index, offset="0", limit=str(MAX_LIMIT * 10))
    assert big["limit"] == MAX_LIMIT and len(big["items"]) == N


def test_filters_search_and_their_totals(index: Index) -> None:
    failed = page(index, status="failed", limit="10")
    assert failed["total"] == 62 and len(failed["items"]) == 10
    assert {r["status"] for r in failed["items"]} == {"failed"}
    both = page(index, status=["failed", "done"], limit="500")
    assert both["total"] == 62 + 63 and {r["status"] for r in both["items"]} == {"failed", "done"}
    narrow = page(index, status="running", group="baseline", stage="2", target="gpu1", phase="phase1", limit="500")
    assert narrow["items"] and all(
        (r["status"], r["group"], r["stage"], r["target"], r["phase"]) == ("running", "baseline", 2, "gpu1", "phase1")
        for r in narrow["items"]
    )
    assert narrow["total"] == len(narrow["items"])
    oom = page(index, q="OUT OF MEMORY", limit="500")  # case-insensitive, in the notes
    assert oom["total"] > 0 and all("out of memory" in r["notes"].lower() for r in oom["items"])
    assert ids(page(index, q="exp12", limit="500")) == [f"exp{i}" for i in range(120, 130)]
    assert page(index, q="cuda_oom", limit="500")["total"] == oom["total"]  # the failure class too
    assert page(index, q="nothing-like-it", limit="5") == {**page(index, q="nothing-like-it", limit="5"), "total": 0}


def test_sorts_with_ties_in_id_order_and_blanks_last(index: Index) -> None:
    by_status = page(index, sort="status", limit="500")["items"]
    order = [views.STATUS_ORDER.index(r["status"]) for r in by_status]
    assert order == sorted(order)
    assert ids({"items": [r for r in by_status if r["status"] == "done"]}) == sorted(
        r["id"] for r in by_status if r["status"] == "done"
    )
    started = page(index, sort="started", limit="500")
    values = [r["started"] for r in started["items"]]
    present = [v for v in values if v is not None]
    assert present == sorted(present) and values[len(present) :] == [None] * (N - len(present))
    newest = page(index, sort="-started", limit="500")
    assert newest["sort"] == "-started"
    values = [r["started"] for r in newest["items"]]
    assert values[: len(present)] == sorted(present, reverse=True) and values[-1] is None
    assert ids(page(index, sort="-id", limit="3")) == ["exp249", "exp248", "exp247"]
    stages = [r["stage"] for r in page(index, sort="stage", status="done", limit="500")["items"]]
    assert stages == sorted(stages)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"offset": ["-1"]}, "offset must be a whole number"),
        ({"limit": ["ten"]}, "limit must be a whole number"),
        ({"limit": ["1.5"]}, "limit must be a whole number"),
        ({"offset": ["99999999999999"]}, "offset must be a whole number"),
        ({"sort": ["colour"]}, "sort 'colour' is not one of"),
        ({"sort": ["--id"]}, "is not one of"),
        ({"limit": ["10", "20"]}, "limit is given 2 times"),
        ({"statuss": ["done"]}, "unknown parameter 'statuss'"),
    ],
)
def test_bad_parameters_say_what_is_wrong(query: dict[str, list[str]], message: str) -> None:
    with pytest.raises(BadQuery, match=message):
        parse_query(query)


def test_facets_are_the_filters_options(index: Index) -> None:
    assert index.facets["status"] == [["pending", 62], ["running", 63], ["done", 63], ["failed", 62]]  # status order
    assert index.facets["stage"] == [["1", 125], ["2", 125]]
    assert [v for v, _ in index.facets["target"]] == ["gpu1", "gpu2"]
    assert [v for v, _ in index.facets["phase"]] == ["phase0", "phase1", "phase2"]


def test_answers_are_built_once_per_snapshot(snap: Snapshot) -> None:
    pages = Pages()
    assert pages.index(snap) is pages.index(snap)
    first = pages.encoded(snap, "summary")
    assert pages.encoded(snap, "summary") is first
    assert b'"facets"' in first and b'"total": 250' in first
    other = Snapshot(snap.project_dir, "beef", snap.committed_at, None, (), snap.state)
    assert pages.index(other) is not pages.index(snap)
