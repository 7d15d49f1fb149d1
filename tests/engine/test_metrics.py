"""The loop's own metrics, after real passes (``reconcile --once`` in a process) over a real git
project: ``.reconciler/metrics.json``, ``.reconciler/metrics.prom`` and ``show_health``."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from reconciler.commands.health import show_health
from reconciler.model.metrics import STAGES
from tests.engine.project import CONFIG, JOB, dispatch, git, reconcile
from tests.projectkit import commit_project

BROKEN_TARGET = """\
  broken:
    kind: local
    root: .reconciler/runs-broken
    python: /nonexistent/python3
"""

SAMPLE = re.compile(
    r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r'(?:\{(?P<labels>(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\})?'
    r" (?P<value>[-+]?(?:[0-9.]+(?:[eE][-+]?[0-9]+)?|NaN|Inf))$"
)
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
UNESCAPE = re.compile(r"\\(.)")


def _unescape(match: re.Match[str]) -> str:
    return "\n" if match[1] == "n" else match[1]


def parse_prom(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """A strict reader of the text exposition format: every line is a HELP, a TYPE or a sample;
    every sample's metric had its HELP and TYPE before it. Returns the samples by metric."""
    helps: set[str] = set()
    types: dict[str, str] = {}
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in helps, f"two HELP lines for {name}"
            helps.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter"), line
            assert name in helps and name not in types, line
            types[name] = kind
        else:
            match = SAMPLE.fullmatch(line)
            assert match, f"not a sample line: {line!r}"
            name = match["name"]
            assert name in helps and name in types, f"{name} has no HELP/TYPE before it"
            labels = {k: UNESCAPE.sub(_unescape, v) for k, v in LABEL.findall(match["labels"] or "")}
            samples.setdefault(name, []).append((labels, float(match["value"])))
    assert set(samples) == set(types), "a metric with HELP/TYPE but no sample"
    assert all(n.startswith("reconciler_") for n in samples)
    return samples


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    (found,) = [v for ls, v in samples[name] if all(ls.get(k) == x for k, x in labels.items())]
    return found


def make(root: Path, *, poll_interval: int = 600, extra_target: str = "") -> Path:
    """The engine tests' project (three seeds on the local target), polled every ``poll_interval``
    seconds, and whose own ``.gitignore`` does not list ``.reconciler/`` (it must ignore itself)."""
    config = CONFIG.replace("poll_interval: 1", f"poll_interval: {poll_interval}")
    config = config.replace("policies:", extra_target + "policies:")
    files = {
        ".gitignore": "__pycache__/\n",
        "config/reconciler.yaml": config,
        "dispatch/experiments.yaml": dispatch(3, sleep=15),
        "job.py": JOB,
    }
    return commit_project(root / "project", files)


def metrics(project: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((project / ".reconciler" / "metrics.json").read_text())
    return doc


def test_a_pass_records_its_stages_probes_and_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = make(tmp_path, extra_target=BROKEN_TARGET)
    done = reconcile(project, "--once")
    assert done.returncode in (0, 1), done.stderr  # 1: the broken target did not answer (stalled)
    doc = metrics(project)
    last = doc["last"]
    assert last["project"] == "enginetest"
    assert list(last["stages"]) == list(STAGES)
    assert all(isinstance(v, float) and v >= 0 for v in last["stages"].values())
    assert last["stages"]["pass"] >= sum(v for k, v in last["stages"].items() if k != "pass") * 0.99
    probes = {p["target"]: p for p in last["probes"]}
    assert set(probes) == {"local", "broken"}
    local, broken = probes["local"], probes["broken"]
    assert local["reachable"] and local["error"] is None and local["seconds"] > 0
    assert local["received_bytes"] > 50 and local["sent_bytes"] > 1000  # the probe was installed this pass
    assert not broken["reachable"] and "not found" in broken["error"]
    assert last["experiments"] == {"running": 3}
    assert last["planned"]["launch"] == 3 and last["done"]["launch"] == 3 and not last["failed"]
    assert last["committed"] and last["commit"] == git(project, "rev-parse", "HEAD")
    assert last["poll_interval"] == 600
    assert doc["totals"] == {"passes": 1, "commits": 1}
    assert len(doc["history"]) == 1

    samples = parse_prom((project / ".reconciler" / "metrics.prom").read_text())
    assert {ls["stage"] for ls, _ in samples["reconciler_pass_duration_seconds"]} == set(STAGES)
    assert all(ls["project"] == "enginetest" for series in samples.values() for ls, _ in series)
    assert value(samples, "reconciler_pass_duration_seconds", stage="observe") == pytest.approx(
        last["stages"]["observe"], abs=1e-5
    )
    assert value(samples, "reconciler_target_reachable", target="local") == 1
    assert value(samples, "reconciler_target_reachable", target="broken") == 0
    assert value(samples, "reconciler_probe_duration_seconds", target="local") > 0
    assert value(samples, "reconciler_probe_bytes", target="local", direction="received") == local["received_bytes"]
    assert value(samples, "reconciler_experiments", status="running") == 3
    assert value(samples, "reconciler_experiments", status="done") == 0
    assert value(samples, "reconciler_planned_actions", kind="launch") == 3
    assert value(samples, "reconciler_actions_done", kind="launch") == 3
    assert value(samples, "reconciler_pass_committed") == 1
    assert value(samples, "reconciler_pass_commits_total") == 1
    at = datetime.fromisoformat(last["at"]).timestamp()
    assert value(samples, "reconciler_last_pass_timestamp_seconds") == at

    # Nothing under .reconciler/ is committed or shows up in git status, though the project's
    # .gitignore does not list it.
    assert git(project, "status", "--porcelain") == ""
    assert git(project, "ls-files", ".reconciler") == ""
    assert git(project, "ls-files", "--others", "--exclude-standard") == ""

    capsys.readouterr()
    assert show_health(project, False) == 0
    out = capsys.readouterr()
    assert "last pass:" in out.out and ": ok" in out.out and "observe" in out.out
    assert "broken" in out.out and "UNREACHABLE" in out.out and out.err == ""
    assert show_health(project, True) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["stale"] is False and shown["last"] == last


def test_later_passes_keep_a_history_and_totals(tmp_path: Path) -> None:
    project = make(tmp_path)
    for _ in range(3):
        assert reconcile(project, "--once").returncode == 0
    doc = metrics(project)
    assert doc["totals"] == {"passes": 3, "commits": 1}  # the runs sleep: the later passes commit nothing
    assert [h["committed"] for h in doc["history"]] == [True, False, False]
    assert [h["at"] for h in doc["history"]][-1] == doc["last"]["at"]
    assert doc["last"]["commit"] is None and doc["last"]["planned"].get("launch") is None
    (probe,) = doc["last"]["probes"]
    assert 0 < probe["sent_bytes"] < 1000  # the request only: the probe is installed
    samples = parse_prom((project / ".reconciler" / "metrics.prom").read_text())
    assert value(samples, "reconciler_passes_total") == 3
    assert value(samples, "reconciler_pass_commits_total") == 1
    assert value(samples, "reconciler_pass_committed") == 0
    assert git(project, "status", "--porcelain") == ""


def test_plan_records_nothing_and_health_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = make(tmp_path)
    planned = reconcile(project, "plan", "-C", str(project))
    assert planned.returncode == 1, planned.stdout + planned.stderr  # changes to make
    assert not (project / ".reconciler" / "metrics.json").exists()
    assert not (project / ".reconciler" / "metrics.prom").exists()
    capsys.readouterr()
    assert show_health(project, False) == 1
    assert "no .reconciler/metrics.json" in capsys.readouterr().err
    assert show_health(project, True) == 1
    out = capsys.readouterr()
    assert json.loads(out.out)["last"] is None and "metrics.json" in out.err


def test_stale_metrics_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = make(tmp_path, poll_interval=60)
    assert reconcile(project, "--once").returncode == 0
    path = project / ".reconciler" / "metrics.json"
    doc = json.loads(path.read_text())
    doc["last"]["at"] = (datetime.now(timezone.utc) - timedelta(minutes=4)).isoformat(timespec="seconds")
    path.write_text(json.dumps(doc))
    capsys.readouterr()
    assert show_health(project, False) == 1  # 4 min > 3 x 60 s
    out = capsys.readouterr()
    assert "STALE" in out.out and "stale" in out.err and "4 min ago" in out.out
    doc["last"]["at"] = (datetime.now(timezone.utc) - timedelta(minutes=2)).isoformat(timespec="seconds")
    path.write_text(json.dumps(doc))
    assert show_health(project, False) == 0


def test_a_failed_metrics_write_does_not_fail_the_pass(tmp_path: Path) -> None:
    project = make(tmp_path)
    (project / ".reconciler" / "metrics.json").mkdir(parents=True)  # nothing can be renamed onto it
    done = reconcile(project, "--once")
    assert done.returncode == 0, done.stderr
    assert "warning: cannot write the pass metrics" in done.stderr
    assert "3 launched" in git(project, "log", "-1", "--format=%s")  # the pass committed as always
    assert git(project, "status", "--porcelain") == ""
