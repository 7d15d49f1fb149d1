"""Formula injection through a result file (issue 15, item 8): a job's text cells reach
``all_results.csv`` neutralised (a leading ``'``, as OWASP recommends), numbers untouched."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from reconciler.model.status import StateFile, Status, StatusEntry
from tests.engine.project import git, make_project, reconcile

HEADER = "exp_id,method,dataset,group,metric,seed,value,host,gpu,finished_at\n"
ROWS = [
    "job_s0,=cmd|' /C calc'!A0,@SUM(1+1)*cmd|' /C calc'!A0,main,accuracy,0,-0.5,+host,-,2026-11-26T00:00:00Z\n",
    'job_s0,"=HYPERLINK(""http://127.0.0.1/?x=""&A1)",d,main,loss,0,+1e-3,"\tx",1,2026-11-26T00:00:00Z\n',
]


def test_formula_cells_are_neutralised_and_numbers_kept(tmp_path: Path) -> None:
    project = make_project(tmp_path, seeds=1)
    (project / "experiments/results").mkdir(parents=True)
    (project / "experiments/results/job_s0.csv").write_text(HEADER + "".join(ROWS))
    entry = StatusEntry(id="job_s0", status=Status.DONE, seed=0, group="main", method="m", dataset="d")
    (project / "dispatch/state.json").write_text(StateFile(project="enginetest", entries=(entry,)).dumps())
    git(project, "add", "-A")
    git(project, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "a done run")
    ran = reconcile(project, "export", "-C", str(project))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    rows = list(csv.DictReader(io.StringIO((project / "experiments/results/all_results.csv").read_text())))
    assert [(r["method"], r["dataset"], r["value"], r["host"], r["gpu"]) for r in rows] == [
        ("'=cmd|' /C calc'!A0", "'@SUM(1+1)*cmd|' /C calc'!A0", "-0.5", "'+host", "'-"),
        ('\'=HYPERLINK("http://127.0.0.1/?x="&A1)', "d", "+1e-3", "x", "1"),
    ]
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "@", "\t", "\r")), cell
