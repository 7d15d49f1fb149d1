"""Named scenarios: the shapes in which issue 14 saw its bugs, played by the same harness.

``python -m tests.chaos.run --named item1`` plays one (``--named all``: every one). Each keeps
every invariant once the bug it names is fixed; on the code of issue 14 each shows its violation:

``item1``      ``max_runs_per_gpu: 1``, 12 runs of 30 GB on two local GPU targets, a crash after
               apply, then normal passes: adopted runs do not count, new runs double-book (a)
``item1-ssh``  the same on two real OpenSSH targets
``item1-kill`` the same with SIGKILLs of the pass instead of the crash point: once it has started a
               run, then at half a typical pass
``item2``      a command edited while its run lives (``on_change`` keep): the done entry must
               record what ran (b)
``item3``      ``max_runs_per_gpu: 2``, 40 GB runs whose memory shows 3 s after they start: the
               next pass must reserve the young runs' memory (a)
``item5``      a target down for two passes while another's run lives: no commit only for the
               counters (d)
``item8``      a pass killed while a status write has its temp file: no file left untracked (c)
"""

from __future__ import annotations

from typing import Any

from tests.chaos.scenarios import Scenario, Step


def _gpu_exps(n: int, seeds: int, vram: int, sleep: float, where: list[str]) -> list[dict[str, Any]]:
    return [
        {"id": f"e{i}", "seeds": list(range(seeds)), "sleep": sleep, "targets": where, "vram": vram} for i in range(n)
    ]


def _plain(exp_id: str, seeds: int, sleep: float, where: list[str]) -> dict[str, Any]:
    return {"id": exp_id, "seeds": list(range(seeds)), "sleep": sleep, "targets": where}


def named() -> dict[str, Scenario]:
    """Every named scenario (seed 0; the index only tells them apart in reports)."""
    gpu: dict[str, Any] = {"gpu": True, "foreign": (0, 0)}
    twelve, twelve_ssh = _gpu_exps(2, 6, 30, 3.0, ["ta", "tb"]), _gpu_exps(2, 6, 30, 3.0, ["sa", "sb"])
    crash = [Step("crash", "after_apply")]
    kills = [Step("kill", "launch"), Step("kill", "0.50")]
    big = _gpu_exps(2, 4, 40, 3.0, ["ta"])
    down = [_plain("e0", 1, 3.0, ["ta"]), _plain("e1", 1, 0.1, ["tb"])]
    scenarios = {
        "item1": Scenario(0, 1, twelve, crash, max_runs_per_gpu=1, **gpu),
        "item1-ssh": Scenario(0, 2, twelve_ssh, crash, ssh=True, max_runs_per_gpu=1, **gpu),
        "item1-kill": Scenario(0, 3, twelve, kills, max_runs_per_gpu=1, **gpu),
        "item2": Scenario(0, 4, [_plain("e0", 1, 3.0, ["ta"])], [Step("pass"), Step("commit", "command:0.0")]),
        "item3": Scenario(0, 5, big, [Step("pass")], max_runs_per_gpu=2, warmup=3.0, **gpu),
        "item5": Scenario(0, 6, down, [Step("pass"), Step("down", "tb:2")]),
        "item8": Scenario(0, 7, [_plain("e0", 2, 0.1, ["ta"])], [Step("pass"), Step("kill", "write")]),
    }
    for name, scenario in scenarios.items():
        scenario.name = name
    return scenarios
