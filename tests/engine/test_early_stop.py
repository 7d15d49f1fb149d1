"""Early stop through real passes: a baseline runs in stage 1, two methods in stage 2; in stage 3
the seeds of the method that trails the baseline by more than the threshold are cancelled (with an
escalation), while the runs already done stay done and the method within the threshold goes on."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from reconciler.model.status import Status, StatusEntry
from reconciler.statestore import read_results
from tests.engine.project import git, launches, make_project, reconcile, until

pytestmark = pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default

COMMAND = "python3 job.py --exp {exp_id} --seed {seed} --out {result_file} --value"

DISPATCH = textwrap.dedent(
    f"""\
    version: 1
    defaults:
      phase: pilot
      expected_duration_hours: 0.01
      targets: [local]
      max_retries: 0
      dataset: moons
      early_stop: {{metric: accuracy, threshold_pct: 1.0, check_after: 2, direction: higher}}
    experiments:
      - {{id: logreg, command: "{COMMAND} 0.90", seeds: [0, 1], group: baseline, method: logreg, stage: 1}}
      - {{id: mlp_a, command: "{COMMAND} 0.85", seeds: [0, 1], group: main, method: mlp, stage: 2}}
      - {{id: cnn_a, command: "{COMMAND} 0.895", seeds: [0, 1], group: main, method: cnn, stage: 2}}
      - {{id: mlp_b, command: "{COMMAND} 0.85", seeds: [2, 3], group: main, method: mlp, stage: 3}}
      - {{id: cnn_b, command: "{COMMAND} 0.895", seeds: [2], group: main, method: cnn, stage: 3}}
    """
)


def statuses(project: Path) -> dict[str, str]:
    path = project / "dispatch" / "state.json"
    if not path.exists():
        return {}
    return {e["id"]: e["status"] for e in json.loads(path.read_text())["experiments"]}


def test_trailing_method_later_seeds_are_cancelled_and_done_runs_stay_done(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    (project / "dispatch" / "experiments.yaml").write_text(DISPATCH)
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "early stop project")

    def settled() -> bool:
        s = statuses(project)
        return len(s) == 9 and all(v in ("done", "cancelled", "failed") for v in s.values())

    until(settled, deadline=90, step=lambda: reconcile(project, "--once"))
    s = statuses(project)
    assert {k for k, v in s.items() if v == "cancelled"} == {"mlp_b_s2", "mlp_b_s3"}
    assert {k for k, v in s.items() if v == "done"} == {
        "logreg_s0", "logreg_s1", "mlp_a_s0", "mlp_a_s1", "cnn_a_s0", "cnn_a_s1", "cnn_b_s2"
    }  # fmt: skip
    assert not any(x.startswith("mlp_b") for x in launches(project))

    committed = json.loads(git(project, "show", "HEAD:dispatch/state.json"))
    stopped = next(e for e in committed["experiments"] if e["id"] == "mlp_b_s2")
    assert stopped["status"] == "cancelled"
    reason = (
        "early stop: mlp on moons trails the best baseline logreg by 5 pp on accuracy "
        "(higher is better; 0.85 vs 0.9, threshold 1 pp) after 2 runs"
    )
    assert reason in stopped["notes"]
    escalation = project / "progress" / "escalate_mlp_b_s3.md"
    front = yaml.safe_load(escalation.read_text().split("---\n")[1])
    assert (front["kind"], front["status"], front["reason"]) == ("early_stop", "open", reason)
    assert git(project, "status", "--porcelain", "--", "progress", "dispatch") == ""  # all committed
    head = git(project, "rev-parse", "HEAD")
    reconcile(project, "--once")  # nothing left to do: no new commit, nothing relaunched
    assert git(project, "rev-parse", "HEAD") == head
    assert statuses(project) == s


def test_read_results_means_per_metric_of_done_runs_only(tmp_path: Path) -> None:
    project = tmp_path / "project"
    results = project / "experiments" / "results"
    results.mkdir(parents=True)
    header = "exp_id,method,dataset,group,metric,seed,value,host,gpu,finished_at\n"
    rows = ["a,m,d,main,accuracy,0,0.8,h,,t", "a,m,d,main,accuracy,0,0.9,h,,t", "a,m,d,main,loss,0,0.3,h,,t"]
    (results / "a.csv").write_text(header + "\n".join([*rows, "a,m,d,main,loss,0,nan,h,,t", "a,m,d,main,x,0,?,h,,t"]))
    (results / "b.csv").write_bytes(b"\xff\xfe not csv")
    (results / "p.csv").write_text(header + "p,m,d,main,accuracy,0,0.1,h,,t\n")
    (tmp_path / "outside.csv").write_text(header + "o,m,d,main,accuracy,0,0.1,h,,t\n")
    entries = [
        StatusEntry(id="a", status=Status.DONE),
        StatusEntry(id="b", status=Status.DONE),  # unreadable: skipped
        StatusEntry(id="c", status=Status.DONE),  # missing: skipped
        StatusEntry(id="p", status=Status.PENDING),  # not done: skipped
        StatusEntry(id="o", status=Status.DONE, result_file="../outside.csv"),  # outside the project
    ]
    got = read_results(project, entries)
    assert got.keys() == {"a"}
    assert got["a"] == {"accuracy": pytest.approx(0.85), "loss": pytest.approx(0.3)}
