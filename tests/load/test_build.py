"""From valid files to the typed model: defaults merged, seeds expanded, config defaults applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import SchemaError
from reconciler.load import WorkTree, inspect, load_desired, validate
from reconciler.model.config import Config, EnvRepair, Policies, TargetKind
from reconciler.model.decisions import DecisionAction
from reconciler.model.spec import DesiredRunState, Direction, Group, MetricScale, StopRule
from tests.load.project import EXPERIMENTS, write_project


def test_valid_project_loads(tmp_path: Path) -> None:
    root = write_project(tmp_path)
    desired = load_desired(WorkTree(root), revision="abc")
    assert desired.revision == "abc"
    ids = [e.id for e in desired.experiments]
    assert ids == ["logreg_blobs_s0", "logreg_blobs_s1", "mlp_blobs_s0", "mlp_blobs_s1", "summary"]
    assert len(ids) == EXPERIMENTS
    assert validate(root) == []


def test_defaults_merge_and_seed_expansion(tmp_path: Path) -> None:
    desired = load_desired(write_project(tmp_path))
    by_id = desired.by_id()
    s0 = by_id["mlp_blobs_s0"]
    assert (s0.base_id, s0.seed, s0.group, s0.stage) == ("mlp_blobs", 0, Group.MAIN, 2)
    assert s0.phase == "pilot"  # from defaults
    assert s0.expected_duration_hours == 0.5
    assert s0.targets == ("local", "lab1")  # the entry's list replaces the default's
    assert s0.source == "dispatch/main.yaml:13"
    summary = by_id["summary"]
    assert summary.seed is None
    assert summary.targets == ("local",)
    assert summary.result_file == "experiments/results/{exp_id}.csv"
    assert summary.result_path == "experiments/results/summary.csv"
    assert summary.priority == 100
    assert summary.state is DesiredRunState.ACTIVE


def test_config_defaults_are_the_model_defaults(tmp_path: Path) -> None:
    config = load_desired(write_project(tmp_path)).config
    assert isinstance(config, Config)
    assert config.project == "mini"
    assert config.target_names == ("local", "lab1")
    lab1 = config.target("lab1")
    assert lab1.kind is TargetKind.SSH
    assert lab1.ssh is not None
    assert (lab1.ssh.host, lab1.ssh.port, lab1.ssh.strict_host_key_checking) == ("lab1", 22, True)
    assert config.target("local").ssh is None
    assert config.policies == Policies(poll_interval=30.0)


def test_every_documented_key_builds(tmp_path: Path) -> None:
    config = """\
version: 1
project: full
targets:
  gadi:
    kind: pbs
    host: gadi
    user: alice
    root: /scratch/ab12/alice/full
    python: python3.11
    max_runs: 4
    platform_factor: 1.5
    checkpoint_dir: null
    env: {conda: myenv, setup: ["module load cuda/12.1"], variables: {OMP_NUM_THREADS: 1},
          repair: {commands: ["conda env update -n myenv -f environment.yml"], timeout_seconds: 1200}}
    gpus: {blacklist: [0], blacklist_models: [], max_runs_per_gpu: 2, vram_factor: 1.1}
    batch: {queue: gpuvolta, account: ab12, storage: "scratch/ab12", cpus_per_gpu: 12, mem_gb: 32,
            modules: ["cuda/12.1"], walltime_factor: 2, default_walltime_hours: 10, extra_directives: []}
  other:
    kind: command
    root: runs
    env: {venv: .venv, repair: true}
    templates: {submit: "sub {script}", status: "st {job}", cancel: "del {job}"}
policies:
  backoff: {base_seconds: 10, factor: 3, max_seconds: 100}
  unreachable: {consecutive: 2, total: 4, ratio: 0.5, min_probes: 3}
  timeouts: {escalate_factor: 1.5, hold_factor: 2, queue_factor: 3, phase_guard_hours: 24, kill_on_hold: true}
  prune: true
  pause: true
git: {push: true, branch: status}
notifications: {events: [escalation, phase_done], webhook_env: LAB_HOOK, failure_threshold: 0.3}
wandb: {project: p, mode: offline}
huggingface: {repo: alice/full, cleanup_checkpoints: false}
"""
    dispatch = """\
version: 1
experiments:
  - id: a
    command: python a.py --out {result_file}
    targets: [gadi]
    vram_gb: 8
    gpus: 1
    max_retries: 1
    state: hold
    env: {A: 1, B: x}
    metrics: [acc]
    remediation:
      cuda_oom: {retry: true, halve_args: ["--batch-size"], set_args: {"--accumulate-grad-batches": 2}}
      import_error: {retry: false}
    early_stop: {metric: acc, threshold_pct: 1, check_after: 2, direction: lower, rule: must_beat, scale: percent}
"""
    root = write_project(
        tmp_path,
        {
            "config/reconciler.yaml": config,
            "dispatch/main.yaml": dispatch,
            "dispatch/decisions.yaml": "version: 1\ndecisions:\n",
            "experiments/definitions.json": None,
            "experiments/pilot_design.json": None,
            "dispatch/state.json": None,
        },
    )
    desired = load_desired(root)
    gadi = desired.config.target("gadi")
    assert gadi.batch is not None and gadi.batch.mem_gb == 32.0 and gadi.batch.modules == ("cuda/12.1",)
    assert gadi.env.variables == (("OMP_NUM_THREADS", "1"),)
    assert gadi.gpus.blacklist == (0,) and gadi.gpus.blacklist_models == ()
    assert gadi.env.repair == EnvRepair(("conda env update -n myenv -f environment.yml",), 1200.0)
    other = desired.config.target("other")
    assert other.templates is not None and other.templates.submit == "sub {script}"
    assert other.env.repair == EnvRepair()  # true: the default ladder
    assert desired.config.policies.backoff.delay(2) == 30.0
    assert desired.config.policies.timeouts.kill_on_hold is True
    assert desired.config.policies.pause is True
    assert desired.config.git.branch == "status"
    assert desired.config.hub.repo == "alice/full"
    notify = desired.config.notifications
    assert (notify.events, notify.webhook_env, notify.failure_threshold) == (
        ("escalation", "phase_done"),
        "LAB_HOOK",
        0.3,
    )
    spec = desired.experiments[0]
    assert spec.env == (("A", "1"), ("B", "x"))
    assert [r.failure_class for r in spec.remediation] == ["cuda_oom", "import_error"]
    assert spec.remediation[0].set_args == (("--accumulate-grad-batches", "2"),)
    assert spec.early_stop is not None and spec.early_stop.direction is Direction.LOWER
    assert (spec.early_stop.rule, spec.early_stop.scale) == (StopRule.MUST_BEAT, MetricScale.PERCENT)
    assert spec.state is DesiredRunState.HOLD
    assert desired.decisions == ()


def test_decisions_definitions_designs(tmp_path: Path) -> None:
    desired = load_desired(write_project(tmp_path))
    assert [(d.id, d.action, d.exp, d.stage) for d in desired.decisions] == [
        ("d1", DecisionAction.RETRY, "logreg_blobs_s0", None),
        ("d2", DecisionAction.APPROVE_STAGE, None, 2),
    ]
    assert desired.decisions[0].source == "dispatch/decisions.yaml:3"
    assert [d.id for d in desired.definitions] == ["logreg_blobs", "mlp"]
    assert desired.definitions[0].seeds == (0, 1)
    (table,) = desired.designs
    assert table.name == "pilot_design"
    assert [c.exp_id for c in table.cells] == ["logreg_blobs", "mlp_blobs_s0"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        {
            "dispatch/main.yaml": """\
version: 1
experiments:
  - id: a
    command: python a.py {nope}
    seeds: [0, 0]
    targets: [ghost]
  - id: b
    comand: x
    group: Main
""",
        },
    )
    problems = [str(p) for p in validate(root) if p.file == "dispatch/main.yaml"]
    assert problems == [
        "dispatch/main.yaml:4:5: experiments[0].command: unknown placeholder '{nope}' "
        "(known: {seed}, {exp_id}, {checkpoint_dir}, {result_file})",
        "dispatch/main.yaml:5:16: experiments[0].seeds[1]: duplicate experiment id 'a_s0' "
        "(also at dispatch/main.yaml:5:13)",
        "dispatch/main.yaml:6:15: experiments[0].targets[0]: unknown target 'ghost' "
        "(config/reconciler.yaml defines: local, lab1)",
        "dispatch/main.yaml:8:5: experiments[1].comand: unknown key 'comand' (did you mean 'command'?)",
        "dispatch/main.yaml:9:5: experiments[1].group: 'Main' is not one of 'main', 'baseline', 'ablation', 'analysis'",
    ]
    # b's missing command is not reported on top of its typo: entries with schema errors are skipped
    with pytest.raises(SchemaError) as info:
        load_desired(root)
    assert [str(p) for p in info.value.problems if p.file == "dispatch/main.yaml"] == problems


def test_references_to_an_entry_with_errors_are_not_reported_twice(tmp_path: Path) -> None:
    """The design cell names ``mlp_blobs_s0``, whose entry has a typo: one problem, not two."""
    root = write_project(tmp_path)
    main = (root / "dispatch/main.yaml").read_text().replace("    stage: 2\n", "    stage: two\n")
    (root / "dispatch/main.yaml").write_text(main)
    assert [str(p) for p in validate(root)] == [
        "dispatch/main.yaml:20:5: experiments[1].stage: 'two' is not of type 'integer'"
    ]


@pytest.mark.parametrize(
    ("result_file", "message"),
    [
        ("/tmp/x.csv", "'/tmp/x.csv' must be a relative path inside the project"),
        ("~/x.csv", "'~/x.csv' must be a relative path inside the project"),
        ("../x.csv", "'../x.csv' escapes the project"),
        ("results/", "'results/' must name a file"),
        ("dispatch/{exp_id}.yaml", "'dispatch/{exp_id}.yaml' must be under experiments/results/ (where results land)"),
        (
            ".git/hooks/{exp_id}",
            "'.git/hooks/{exp_id}' names a hidden file or folder ('.git'), which results may not write to",
        ),
        ("R/{checkpoint_dir}.csv", "unknown placeholder '{checkpoint_dir}' (known: {exp_id}, {seed})"),
        ("R/{seed}.csv", "placeholder '{seed}' is used but the experiment has no seeds"),
        ("R/same.csv", "result file 'R/same.csv' is also written by 'a' (dispatch/main.yaml:3:5)"),
    ],
)
def test_result_file_rules(tmp_path: Path, result_file: str, message: str) -> None:
    result_file = result_file.replace("R/", "experiments/results/")
    message = message.replace("R/", "experiments/results/")
    dispatch = f"""\
version: 1
experiments:
  - id: a
    command: run {{exp_id}}
    result_file: experiments/results/same.csv
  - id: b
    command: run {{exp_id}}
    result_file: "{result_file}"
"""
    root = write_project(tmp_path, {"dispatch/main.yaml": dispatch})
    problems = [p for p in validate(root) if p.file == "dispatch/main.yaml"]
    assert [(p.line, p.field, p.message) for p in problems] == [(8, "experiments[1].result_file", message)]


def test_same_result_file_for_every_seed(tmp_path: Path) -> None:
    dispatch = (
        "version: 1\nexperiments:\n  - id: a\n    command: run\n    seeds: [1, 2]\n"
        "    result_file: experiments/results/a.csv\n"
    )
    root = write_project(tmp_path, {"dispatch/main.yaml": dispatch})
    assert [str(p) for p in validate(root) if p.file == "dispatch/main.yaml"] == [
        "dispatch/main.yaml:6:5: experiments[0].result_file: result file 'experiments/results/a.csv' is the same "
        "for every seed (use {exp_id} or {seed})"
    ]


def test_shell_braces_are_not_placeholders(tmp_path: Path) -> None:
    dispatch = (
        "version: 1\nexperiments:\n  - id: summary\n"
        "    command: 'cp a.{csv,txt} ${HOME}/x && find . -exec echo {} \\; --out {result_file}'\n"
    )
    root = write_project(tmp_path, {"dispatch/main.yaml": dispatch})
    assert [p for p in validate(root) if p.file == "dispatch/main.yaml"] == []


def test_definition_group_must_match_the_experiment_it_names(tmp_path: Path) -> None:
    root = write_project(tmp_path)
    text = (root / "experiments/definitions.json").read_text().replace('"group": "baseline"', '"group": "main"')
    (root / "experiments/definitions.json").write_text(text)
    assert [str(p) for p in validate(root)] == [
        "experiments/definitions.json:2:75: [0].group: group 'main' differs from 'baseline' of 'logreg_blobs' "
        "(dispatch/main.yaml:9:13)"
    ]


def test_decision_may_name_an_experiment_only_the_recorded_state_knows(tmp_path: Path) -> None:
    decisions = "version: 1\ndecisions:\n  - {id: d1, exp: gone_s0, action: cancel}\n"
    state = '{"version": 1, "project": "mini", "experiments": [{"id": "gone_s0", "status": "on_hold"}]}\n'
    root = write_project(tmp_path, {"dispatch/decisions.yaml": decisions, "dispatch/state.json": state})
    assert validate(root) == []
    (root / "dispatch/state.json").unlink()
    assert [p.message for p in validate(root)] == [
        "'gone_s0' is not an experiment of dispatch/*.yaml or dispatch/state.json"
    ]


def test_missing_files_and_odd_names(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"config/reconciler.yaml": None, "dispatch/more.yml": "version: 1\n"})
    (root / "config").mkdir()
    (root / "config/reconciler.yml").write_text("version: 1\n")
    assert [str(p) for p in validate(root)] == [
        "config/reconciler.yaml:1:1: (file): missing required file (found config/reconciler.yml: rename it to .yaml)",
        "dispatch/more.yml:1:1: (file): ignored: dispatch files must end in .yaml",
    ]


def test_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    root = write_project(tmp_path)
    (root / "dispatch/main.yaml").write_bytes(b"version: 1\nexperiments: []\n# \xff\n")
    assert [str(p) for p in validate(root)] == ["dispatch/main.yaml:3:3: (file): cannot read: not UTF-8 text"]


def test_inspect_counts_files(tmp_path: Path) -> None:
    report = inspect(write_project(tmp_path))
    assert report.valid and report.experiments == EXPERIMENTS and len(report.files) == 6
