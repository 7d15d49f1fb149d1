"""The pure half of the loop's metrics: the Prometheus text renderer (escaping, values, HELP/TYPE),
the ``metrics.json`` document (totals, rolling history) and staleness."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from reconciler.model.metrics import (
    HISTORY,
    STAGES,
    Family,
    PassMetrics,
    ProbeStat,
    document,
    escape_help,
    escape_label,
    format_value,
    is_stale,
    render,
    render_prometheus,
)
from tests.engine.test_metrics import parse_prom

AT = "2026-11-26T10:00:00+00:00"


def _metrics(target: str = "lab1", *, commit: str | None = "abc", project: str = "proj") -> PassMetrics:
    return PassMetrics(
        project=project,
        at=AT,
        stages=dict.fromkeys(STAGES, 0.5),
        probes=(
            ProbeStat(target, 0.25, True, received_bytes=2048, moved_bytes=2148),
            ProbeStat("down", 10.0, False, error="probe timed out after 10 s"),
        ),
        experiments={"running": 2, "done": 1},
        planned={"launch": 2},
        done={"launch": 1},
        failed={"launch": 1},
        commit=commit,
        poll_interval=60.0,
    )


def test_label_values_escape_backslash_quote_and_newline() -> None:
    assert escape_label('a"b') == 'a\\"b'
    assert escape_label("a\\b") == "a\\\\b"
    assert escape_label("a\nb") == "a\\nb"
    assert escape_label('\\"\n') == '\\\\\\"\\n'
    assert escape_help("one\\two\nthree") == "one\\\\two\\nthree"
    text = render([Family("reconciler_x", "gauge", "A help\nwith a \\ in it.", [({"target": 'lab "1"\\\n'}, 1.0)])])
    assert text == (
        "# HELP reconciler_x A help\\nwith a \\\\ in it.\n"
        "# TYPE reconciler_x gauge\n"
        'reconciler_x{target="lab \\"1\\"\\\\\\n"} 1.0\n'
    )
    (((labels, value),),) = parse_prom(text).values()
    assert labels == {"target": 'lab "1"\\\n'} and value == 1.0


def test_odd_target_and_project_names_still_parse() -> None:
    odd = 'we"ird\\name\nnext'
    samples = parse_prom(render_prometheus(_metrics(odd, project='p"\\'), {"passes": 4, "commits": 2}))
    targets = {ls["target"] for ls, _ in samples["reconciler_probe_duration_seconds"]}
    assert targets == {odd, "down"}
    assert {ls["project"] for series in samples.values() for ls, _ in series} == {'p"\\'}


def test_values_and_families() -> None:
    assert [format_value(v) for v in (1, True, 0.5, math.nan, math.inf, -math.inf, 1e-7)] == [
        "1", "1", "0.5", "NaN", "+Inf", "-Inf", "1e-07",
    ]  # fmt: skip
    samples = parse_prom(render_prometheus(_metrics(), {"passes": 4, "commits": 2}))
    byte_samples = {(ls["target"], ls["direction"]): v for ls, v in samples["reconciler_probe_bytes"]}
    assert byte_samples == {("lab1", "received"): 2048, ("lab1", "sent"): 100}  # unknown for "down": left out
    assert {ls["target"]: v for ls, v in samples["reconciler_target_reachable"]} == {"lab1": 1, "down": 0}
    statuses = {ls["status"]: v for ls, v in samples["reconciler_experiments"]}
    assert statuses["running"] == 2 and statuses["done"] == 1 and statuses["failed"] == 0  # every status, 0 too
    assert samples["reconciler_passes_total"] == [({"project": "proj"}, 4.0)]
    assert samples["reconciler_pass_commits_total"] == [({"project": "proj"}, 2.0)]
    assert samples["reconciler_last_pass_timestamp_seconds"][0][1] == datetime.fromisoformat(AT).timestamp()
    assert render([Family("reconciler_empty", "gauge", "nothing")]) == ""


def test_document_keeps_totals_and_the_last_passes() -> None:
    doc = document(_metrics())
    assert doc["totals"] == {"passes": 1, "commits": 1} and len(doc["history"]) == 1
    for _ in range(HISTORY + 5):
        doc = document(_metrics(commit=None), doc)
    assert doc["totals"] == {"passes": HISTORY + 6, "commits": 1}
    assert len(doc["history"]) == HISTORY and not any(h["committed"] for h in doc["history"])
    assert doc["last"]["probes"][0]["sent_bytes"] == 100
    assert doc["last"]["probes"][1]["sent_bytes"] is None
    junk: tuple[object, ...] = (
        None,
        [],
        {"version": 99, "totals": {"passes": 7}},
        {"version": 1, "totals": {"passes": -3}},
    )
    for previous in junk:
        assert document(_metrics(), previous)["totals"] == {"passes": 1, "commits": 1}


@pytest.mark.parametrize(
    ("age", "interval", "stale"),
    [
        (timedelta(seconds=10), 60.0, False),
        (timedelta(minutes=3, seconds=1), 60.0, True),
        (timedelta(minutes=14), None, False),
    ],
)
def test_stale_after_three_poll_intervals(age: timedelta, interval: float | None, stale: bool) -> None:
    now = datetime.fromisoformat(AT) + age
    assert is_stale(AT, now, interval) is stale  # None: 5 minutes
    assert is_stale(None, now, interval) and is_stale("yesterday", now, interval)
    assert is_stale("2026-11-26T10:00:00", now.astimezone(timezone.utc), interval)  # no offset: unreadable
