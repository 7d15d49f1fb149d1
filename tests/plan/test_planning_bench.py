"""``benchmarks/planning.py`` still builds its worlds and plans them as it says (behaviour only,
never timings): every experiment launched on the first pass, nothing to do in the steady state
(with or without log tails), the stage-2 experiments waiting; its CLI prints one line a case."""

from __future__ import annotations

import pytest

from benchmarks.planning import main, synthetic_planning


def test_the_worlds_plan_as_described() -> None:
    out = synthetic_planning(40, 2, 1)
    assert out["cold_launches"] == 40
    assert out["steady_empty"] and out["steady_io_actions"] == 0
    assert out["steady_tails_empty"]
    assert out["staged_waiting"] == 12 and out["staged_io_actions"] == 0


def test_the_cli_prints_each_case(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--n", "30", "--hosts", "2", "--repeats", "1"]) == 0
    printed = capsys.readouterr().out
    for case in ("cold", "steady", "steady_tails", "staged"):
        assert f"  {case} " in printed
    assert main(["--n", "30", "--hosts", "2", "--profile", "steady", "--top", "3"]) == 0
    assert "function calls" in capsys.readouterr().out
