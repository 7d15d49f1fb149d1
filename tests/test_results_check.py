"""``results.check_result``: the canonical result CSV a collected run must be, and the final
metrics a done entry keeps from it (each metric's mean over the rows, first-seen order)."""

from __future__ import annotations

from reconciler.results import COLUMNS, MAX_METRICS, check_result

HEADER = ",".join(COLUMNS)


def row(metric: str, value: str, seed: int = 0) -> str:
    return f"a,m,d,main,{metric},{seed},{value},host,,2026-11-26T00:00:00Z"


def test_means_per_metric_in_the_order_they_first_appear() -> None:
    text = "\n".join([HEADER, row("loss", "0.5"), row("accuracy", "0.8"), row("loss", "0.25"), row("accuracy", "0.9")])
    check = check_result(text + "\n", "a")
    assert check.ok and check.rows == 4
    assert check.means == (("loss", 0.375), ("accuracy", 0.85))


def test_a_rejected_file_has_no_means() -> None:
    check = check_result("\n".join([HEADER, row("accuracy", "nan")]), "a")
    assert not check.ok and check.means == ()


def test_the_metrics_kept_are_capped() -> None:
    rows = [row(f"m{i}", "1") for i in range(MAX_METRICS + 10)] + [row("x" * 100, "1")]
    check = check_result("\n".join([HEADER, *rows]), "a")
    assert check.ok and check.rows == MAX_METRICS + 11
    assert len(check.means) == MAX_METRICS and all(len(name) <= 64 for name, _ in check.means)
