"""The ``templates`` of ``command`` targets in config/reconciler.yaml: the new keys load into the
model with their documented defaults, and a regex that does not compile is a problem naming the
file, line and field (like every loader error)."""

from __future__ import annotations

from pathlib import Path

from reconciler.load import load_desired
from reconciler.load.config import template_problems
from reconciler.load.desired import as_tree, validate
from reconciler.load.sources import read_sources
from reconciler.model.config import CommandTemplates

CONFIG = """\
version: 1
project: mini
targets:
  plat:
    kind: command
    root: /afs/mini
    templates:
      submit: acp jobs create --name {name} -- /bin/sh {script}
      status: acp jobs describe {job_id}
      cancel: acp jobs stop {job_id} || true
%s
"""
DISPATCH = """\
version: 1
experiments:
  - id: e1
    command: python train.py --out {result_file}
    group: main
    targets: [plat]
"""


def project(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "config").mkdir()
    (tmp_path / "dispatch").mkdir()
    (tmp_path / "config" / "reconciler.yaml").write_text(CONFIG % extra)
    (tmp_path / "dispatch" / "main.yaml").write_text(DISPATCH)
    return tmp_path


def test_defaults(tmp_path: Path) -> None:
    templates = load_desired(project(tmp_path)).config.target("plat").templates
    assert templates == CommandTemplates(
        submit="acp jobs create --name {name} -- /bin/sh {script}",
        status="acp jobs describe {job_id}",
        cancel="acp jobs stop {job_id} || true",
    )
    assert (templates.find, templates.job_id_regex, templates.state_regex, templates.states) == (
        "",
        r"\S+",
        r"^\s*(\S+)",
        (),
    )


def test_new_keys(tmp_path: Path) -> None:
    extra = """\
      find: acp jobs list --name {name}
      job_id_regex: "pt-[a-z0-9]+"
      state_regex: '^state: (\\w+)'
      states: {Running: running, Pending: queued, Completed: completed}"""
    templates = load_desired(project(tmp_path, extra)).config.target("plat").templates
    assert templates is not None
    assert templates.find == "acp jobs list --name {name}"
    assert templates.job_id_regex == "pt-[a-z0-9]+" and templates.state_regex == r"^state: (\w+)"
    assert templates.states == (("Completed", "completed"), ("Pending", "queued"), ("Running", "running"))


def test_unknown_state_value_is_a_schema_error(tmp_path: Path) -> None:
    problems = validate(project(tmp_path, "      states: {Running: flying}"))
    assert [(p.file, p.line, p.field) for p in problems] == [
        ("config/reconciler.yaml", 11, "targets.plat.templates.states.Running")
    ]


def test_bad_regexes_name_file_line_and_field(tmp_path: Path) -> None:
    extra = """\
      job_id_regex: "pt-(["
      state_regex: '(?P<x'"""
    root = project(tmp_path, extra)
    sources = read_sources(as_tree(root))
    assert sources.config is not None and sources.config.valid  # the schema cannot tell
    problems = template_problems(sources.config)
    assert [str(p).split(": not a valid")[0] for p in problems] == [
        "config/reconciler.yaml:11:7: targets.plat.templates.job_id_regex",
        "config/reconciler.yaml:12:7: targets.plat.templates.state_regex",
    ]
    assert all("not a valid regular expression" in p.message for p in problems)
