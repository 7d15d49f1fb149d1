"""Smoke test of the benchmark (``python -m benchmarks.run``) on a tiny grid.

It runs the real benchmark entry point on one cell (H = 2 in-process asyncssh targets, 20
experiments in every phase) and asserts behaviour only, never timings: one remote command
per target in every steady pass, no commit on an idle pass, the fleet recorded as built (done,
running, pending), the naive poller issuing one command per running experiment, and the
outputs (markdown, JSON, two SVG charts) written and well-formed.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from benchmarks.run import main


def test_quick_grid_counts_commands_and_commits(tmp_path: Path) -> None:
    rc = main(["--quick", "--cells", "20x2", "--no-watch", "--no-planning", "--label", "smoke", "--out", str(tmp_path)])
    assert rc == 0
    [doc] = tmp_path.glob("*-smoke.json")
    results = json.loads(doc.read_text())
    assert [(c["experiments"], c["hosts"]) for c in results["cells"]] == [(20, 2)]
    for cell in results["cells"]:
        hosts = cell["hosts"]
        idle = [p for p in cell["passes"] if p["pass"] == "idle"]
        assert len(idle) == 2
        assert [p["commands"] for p in idle] == [hosts, hosts]
        assert not any(p["committed"] for p in idle)
        assert cell["idle_commits"] == 0
        assert cell["passes"][0]["pass"] == "adopt" and cell["passes"][0]["committed"]
        assert cell["statuses"] == {"done": 8, "running": 6, "pending": 6}
        for variant in ("seed", "per_host"):
            naive = cell["naive"][variant]
            assert naive["commands"] == naive["running"] == 6
            assert naive["running_seen"] == 6
            assert not naive["extrapolated"]
        # The seed polls with the OpenSSH client, a new ssh process per command (CI has one).
        openssh = shutil.which("ssh") is not None
        assert cell["naive"]["seed"]["client"].startswith("OpenSSH client") == openssh
    assert results["checks"] == []
    text = (tmp_path / doc.name.replace(".json", ".md")).read_text()
    assert "| 2 | 20 | 8/6/6 |" in text
    for chart in tmp_path.glob("*-smoke-*.svg"):
        root = ET.fromstring(chart.read_text())
        assert root.tag.endswith("svg")
        assert root.findall(".//{http://www.w3.org/2000/svg}polyline")
    assert len(list(tmp_path.glob("*-smoke-*.svg"))) == 2
