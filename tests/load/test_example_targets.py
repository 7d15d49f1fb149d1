"""examples/targets/*.yaml are complete configs a user can copy: each passes the real loader (schema,
model, cross-file checks, template regexes) in a project whose experiments use its targets, and
each builds the scheduler adapter its kind names."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.backends.cmdtemplate import CommandTemplate
from reconciler.backends.pbs import Pbs
from reconciler.backends.scheduler import JobRequest, JobState
from reconciler.load import load_desired
from reconciler.load.config import template_problems
from reconciler.load.desired import as_tree
from reconciler.load.sources import read_sources
from reconciler.model.config import TargetKind

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "targets"
NAMES = sorted(p.name for p in EXAMPLES.glob("*.yaml"))


def project(tmp_path: Path, config: str, target: str) -> Path:
    (tmp_path / "config").mkdir()
    (tmp_path / "dispatch").mkdir()
    (tmp_path / "config" / "reconciler.yaml").write_text(config)
    (tmp_path / "dispatch" / "main.yaml").write_text(
        f"""version: 1
experiments:
  - id: calib_cifar10
    command: python train.py --seed {{seed}} --out {{result_file}}
    seeds: [0, 1]
    group: main
    method: calib
    dataset: cifar10
    expected_duration_hours: 2
    targets: [{target}]
"""
    )
    return tmp_path


def test_the_three_examples_exist() -> None:
    assert NAMES == ["c500.yaml", "gadi.yaml", "slurm.yaml"]


@pytest.mark.parametrize("name", NAMES)
def test_example_loads(tmp_path: Path, name: str) -> None:
    target = name.removesuffix(".yaml")
    if target == "slurm":
        target = "cluster"
    root = project(tmp_path, (EXAMPLES / name).read_text(), target)
    desired = load_desired(root)
    sources = read_sources(as_tree(root))
    assert sources.config is not None and template_problems(sources.config) == []
    assert desired.config.target_names == (target,)
    assert [e.id for e in desired.experiments] == ["calib_cifar10_s0", "calib_cifar10_s1"]


def test_gadi_builds_a_script_the_seed_accepts(tmp_path: Path) -> None:
    desired = load_desired(project(tmp_path, (EXAMPLES / "gadi.yaml").read_text(), "gadi"))
    target = desired.config.target("gadi")
    assert target.kind is TargetKind.PBS and target.batch is not None
    req = JobRequest(
        "rc.calib.x.1", "/scratch/r", "/scratch/r/wrapper.sh", "/scratch/r/pbs.log", 3 * 3600, 1, target.batch
    )
    script = Pbs().job_script(req)
    for needle in (
        "#PBS -l walltime",
        "#PBS -l ncpus=12",
        "#PBS -l ngpus=1",
        "#PBS -l mem=48GB",
        "#PBS -l storage",
        "#PBS -P ab12",
    ):
        assert needle in script


def test_c500_states_and_ids(tmp_path: Path) -> None:
    desired = load_desired(project(tmp_path, (EXAMPLES / "c500.yaml").read_text(), "c500"))
    templates = desired.config.target("c500").templates
    assert templates is not None
    sched = CommandTemplate(templates)
    assert sched.parse_submit("job created\njob_id: pt-8f3k2\n") == "pt-8f3k2"
    for word, state in [
        ("QUEUEING", JobState.QUEUED),
        ("Running", JobState.RUNNING),
        ("SUCCEEDED", JobState.COMPLETED),
        ("Failed", JobState.FAILED),
        ("Stopped", JobState.CANCELLED),
        ("SUSPENDED", JobState.HELD),
    ]:
        assert sched.map_state(word) is state
    out = sched.parse_status('@@cmd-job@@ pt-1\n{"job_id": "pt-1", "state": "QUEUEING"}\n@@cmd-rc@@ 0\n')
    assert out["pt-1"].state is JobState.QUEUED
