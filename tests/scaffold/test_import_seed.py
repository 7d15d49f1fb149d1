"""``reconcile import-seed``: a seed project (config.md, state.json, a sidecar) becomes ours, validates,
and loses nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from click.testing import CliRunner

from reconciler.commands.import_seed import import_seed as import_seed_command
from reconciler.model.status import StateFile, Status
from reconciler.seedimport.configmd import parse_config_md
from reconciler.seedimport.specs import build_specs
from tests.example.tools import run, tool

FIXTURE = Path(__file__).parent / "fixtures" / "seed_project"
ORIGINAL = (FIXTURE / "dispatch" / "state.json").read_bytes()


class Outcome(NamedTuple):
    returncode: int
    output: str


def import_seed(root: Path, *args: str) -> Outcome:
    """``reconcile import-seed`` in this process (fast); ``reconcile validate`` runs as a program."""
    result = CliRunner().invoke(import_seed_command, [str(root), *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.output)


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / "seed"))


@pytest.fixture
def imported(seed: Path) -> Path:
    proc = import_seed(seed)
    assert proc.returncode == 0, proc.output
    return seed


def expanded_ids(dispatch: dict) -> set[str]:
    ids = set()
    for spec in dispatch["experiments"]:
        seeds = spec.get("seeds")
        ids |= {f"{spec['id']}_s{s}" for s in seeds} if seeds else {spec["id"]}
    return ids


def test_the_imported_project_validates(imported: Path) -> None:
    proc = run([tool("reconcile"), "validate", str(imported)], cwd=imported)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_config_has_one_target_per_seed_host(imported: Path) -> None:
    config = yaml.safe_load((imported / "config" / "reconciler.yaml").read_text())
    assert config["project"] == "shift-robust"
    targets = config["targets"]
    assert set(targets) == {"gadi", "xuchang-lab0", "xuchang-lab1"}
    assert targets["gadi"]["kind"] == "pbs"
    assert targets["gadi"]["root"] == "/scratch/ab12/alice/shift-robust"
    assert targets["gadi"]["batch"] == {
        "queue": "gpuvolta",
        "account": "ab12",
        "storage": "scratch/ab12",
        "modules": ["cuda/11.7.0", "python3/3.10.4"],  # the seed's Gadi modules (External Clusters)
    }
    assert targets["xuchang-lab0"] == {
        "kind": "ssh",
        "host": "xuchang-lab0",
        "root": "reconciler/shift-robust",
        "env": {"conda": "ar_shift_robust"},
    }
    assert config["wandb"] == {"project": "shift-robust", "entity": "vision-lab"}
    assert config["huggingface"] == {"repo": "alice/shift-robust-artifacts"}


def test_seeded_entries_fold_into_one_spec(imported: Path) -> None:
    dispatch = yaml.safe_load((imported / "dispatch" / "imported.yaml").read_text())
    specs = {s["id"]: s for s in dispatch["experiments"]}
    main = specs["exp1_cifar10c_main"]
    assert main["seeds"] == [0, 1, 2]
    assert main["command"] == (
        "uv run python experiments/scripts/run_exp1.py --dataset cifar10c --seed {seed}"
        " --checkpoint-dir {checkpoint_dir} --resume"
    )
    assert main["result_file"] == "experiments/results/{exp_id}.csv"
    # the seed's rule kept: a lead of 0.5 points of a 0-100 metric over the best baseline, or stop
    assert main["early_stop"] == {
        "metric": "acc",
        "rule": "must_beat",
        "scale": "percent",
        "threshold_pct": 0.5,
        "check_after": 1,
    }
    assert (main["group"], main["phase"], main["stage"], main["priority"]) == ("main", "Phase 8", 1, 1)
    assert main["expected_duration_hours"] == 2.5 and main["max_retries"] == 2
    pilot = specs["pilot1_cifar10c_core"]
    assert "seeds" not in pilot and "expected_duration_hours" not in pilot
    assert pilot["phase"] == "4" and pilot["group"] == "analysis"
    assert pilot["command"] == "python experiments/scripts/pilot1.py --max-samples 2000 --seed 0"
    state = json.loads((imported / "dispatch" / "state.seed.json").read_text())
    assert expanded_ids(dispatch) == {e["id"] for e in state["experiments"]}


def test_state_is_canonical_and_keeps_every_fact(imported: Path) -> None:
    text = (imported / "dispatch" / "state.json").read_text()
    state = StateFile.loads(text)
    assert text == state.dumps()
    entries = state.by_id()
    s0, s1, gadi, pilot = (
        entries["exp1_cifar10c_main_s0"],
        entries["exp1_cifar10c_main_s1"],
        entries["exp2_imagenetc_baseline_s0"],
        entries["pilot1_cifar10c_core"],
    )
    assert (s0.status, s0.host, s0.gpu, s0.pid, s0.target) == (Status.DONE, "xuchang-lab0", 1, 482113, "xuchang-lab0")
    assert s0.git_commit == "3f9c2ab" and s0.hf_artifact_url and s0.experiment_id == "exp1_cifar10c_main"
    assert dict(s0.extra)["wandb_artifact"] == "vision-lab/shift-robust/exp1_cifar10c_main_s0-best:v0"
    assert dict(s0.extra)["early_stop_metric"] == "acc"
    # the seed's unmerged sidecar wins for non-null values; types are ours (gpu list, pid string)
    assert s1.wandb_run_id == "https://wandb.ai/vision-lab/shift-robust/runs/a1b2c3d4"
    assert (s1.status, s1.gpu, s1.pid, s1.retry_count) == (Status.RUNNING, 3, 90211, 1)
    assert s1.notes == "retry after CUDA OOM; batch size halved"
    # drifted vocabulary: "dead" is failed; PBS facts kept
    assert gadi.status is Status.FAILED and gadi.job_id == "1234567.gadi-pbs" and gadi.target == "gadi"
    assert dict(gadi.extra)["paper_reported"] == {"imagenetc": {"acc": 42.1}}
    assert dict(gadi.extra)["pbs_script_path"].endswith("exp2_imagenetc_baseline_s0.sh")
    assert gadi.phase == "8" and gadi.expected_duration_hours == 10.0
    assert pilot.status is Status.ON_HOLD and pilot.phase == "4" and pilot.group == "analysis"
    assert "imported group 'other' as 'analysis'" in pilot.notes


def test_the_original_state_is_backed_up_byte_for_byte(imported: Path) -> None:
    assert (imported / "dispatch" / "state.seed.json").read_bytes() == ORIGINAL


def test_the_backup_keeps_crlf_line_ends(tmp_path: Path) -> None:
    (tmp_path / "dispatch").mkdir()
    original = b'{\r\n  "project": "p",\r\n  "experiments": [{"id": "a", "status": "done", "command": "x"}]\r\n}\r\n'
    (tmp_path / "dispatch" / "state.json").write_bytes(original)
    assert import_seed(tmp_path).returncode == 0
    assert (tmp_path / "dispatch" / "state.seed.json").read_bytes() == original


def test_a_second_import_refuses_and_force_keeps_the_backup(imported: Path) -> None:
    before = {p: p.read_bytes() for p in imported.rglob("*") if p.is_file()}
    proc = import_seed(imported)
    assert proc.returncode == 2
    assert "config/reconciler.yaml exists" in proc.output and "dispatch/imported.yaml exists" in proc.output
    assert {p: p.read_bytes() for p in imported.rglob("*") if p.is_file()} == before
    forced = import_seed(imported, "--force")
    assert forced.returncode == 0, forced.output
    assert (imported / "dispatch" / "state.seed.json").read_bytes() == ORIGINAL
    assert (imported / "dispatch" / "state.json").read_bytes() == before[imported / "dispatch" / "state.json"]


def test_no_host_gives_one_local_target(tmp_path: Path) -> None:
    (tmp_path / "dispatch").mkdir()
    entries = [
        {"id": f"run_s{s}", "status": "pending", "command": f"python train.py --seed {s}", "group": "main"}
        for s in (0, 1)
    ]
    (tmp_path / "dispatch" / "state.json").write_text(json.dumps({"project": "p", "experiments": entries}))
    proc = import_seed(tmp_path, "--project", "solo", "--target", "here")
    assert proc.returncode == 0, proc.output
    config = yaml.safe_load((tmp_path / "config" / "reconciler.yaml").read_text())
    assert config["project"] == "solo"
    assert config["targets"] == {"here": {"kind": "local", "root": ".reconciler/runs-local", "python": "python3"}}
    dispatch = yaml.safe_load((tmp_path / "dispatch" / "imported.yaml").read_text())
    assert dispatch["experiments"] == [
        {"id": "run", "command": "python train.py --seed {seed}", "seeds": [0, 1], "group": "main"}
    ]
    assert run([tool("reconcile"), "validate", str(tmp_path)], cwd=tmp_path).returncode == 0


def test_a_broken_state_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dispatch").mkdir()
    (tmp_path / "dispatch" / "state.json").write_text("{not json")
    proc = import_seed(tmp_path)
    assert proc.returncode == 2 and "not valid JSON" in proc.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["dispatch", "state.json"]


def test_commands_that_differ_beyond_the_seed_stay_apart() -> None:
    entries = [
        {"id": "a_s0", "seed": 0, "command": "python t.py --seed 0 --lr 0.1", "group": "main"},
        {"id": "a_s1", "seed": 1, "command": "python t.py --seed 1 --lr 0.2", "group": "main"},
        {"id": "b_s0", "seed": 0, "command": "python t.py --seed 0 --out results/b_s0.csv", "group": "baseline"},
    ]
    specs = {s["id"]: s for s in build_specs(entries)}
    assert set(specs) == {"a_s0", "a_s1", "b"}
    assert specs["a_s0"]["command"] == "python t.py --seed 0 --lr 0.1"
    assert specs["b"] == {
        "id": "b",
        "command": "python t.py --seed {seed} --out results/{exp_id}.csv",
        "seeds": [0],
        "group": "baseline",
    }


def test_config_md_settings() -> None:
    text = (FIXTURE / "config" / "config.md").read_text() + (
        "\n```\nproject_name: in-a-fence\n```\n- **wandb_mode**: `offline`\n| key: in a table |\n"
    )
    settings = parse_config_md(text).settings
    assert settings["project_name"] == "shift-robust"
    assert settings["wandb_entity"] == "vision-lab"
    assert settings["wandb_mode"] == "offline"
    assert settings["gadi_scratch_base"] == "/scratch/ab12/alice"
    assert "key" not in settings


def test_runs_live_under_the_seed_are_adopted(seed: Path) -> None:
    """A run the seed left live (pid on a lab server, even one it put on hold) becomes an attempt
    of origin ``seed``: the passes watch its pid and read its files in the seed's checkout."""
    proc = import_seed(seed)
    assert proc.returncode == 0, proc.output
    assert "exp1_cifar10c_main_s1: running under the seed (pid 90211 on xuchang-lab1): adopted" in proc.output
    entries = StateFile.loads((seed / "dispatch" / "state.json").read_text()).by_id()
    live = entries["exp1_cifar10c_main_s1"]
    assert (live.status, live.attempt, live.pid) == (Status.RUNNING, 1, 90211)
    attempt = live.attempts[0]
    assert attempt.origin == "seed"
    assert attempt.token == "seed"
    assert (attempt.target, attempt.pid, attempt.gpus) == ("xuchang-lab1", 90211, (3,))
    assert attempt.run_dir == "~/projects/shift-robust"  # no env verdict names the checkout: the seed's default
    assert attempt.started == "2026-03-02T08:40:00+11:00"
    held = entries["pilot1_cifar10c_core"]
    assert held.status is Status.ON_HOLD and held.attempts[0].pid == 1200  # the seed never killed a held run
    assert not entries["exp1_cifar10c_main_s0"].attempts  # done: nothing to watch
    assert not entries["exp1_cifar10c_main_s2"].attempts


def test_done_entries_get_their_final_metrics_from_the_result_file(seed: Path) -> None:
    result = seed / "experiments" / "results" / "exp1_cifar10c_main_s0.csv"
    result.parent.mkdir(parents=True)
    result.write_text(
        "exp_id,method,dataset,group,metric,seed,value,host,gpu,finished_at\n"
        "exp1_cifar10c_main_s0,m,cifar10c,main,acc,0,0.8,h,1,2026-03-01T12:00:00Z\n"
        "exp1_cifar10c_main_s0,m,cifar10c,main,acc,0,0.9,h,1,2026-03-01T12:00:00Z\n"
    )
    assert import_seed(seed).returncode == 0
    done = StateFile.loads((seed / "dispatch" / "state.json").read_text()).by_id()["exp1_cifar10c_main_s0"]
    assert dict(done.results) == {"acc": 0.85}


def test_a_linked_result_file_is_not_read(seed: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text(
        "exp_id,method,dataset,group,metric,seed,value,host,gpu,finished_at\n"
        "exp1_cifar10c_main_s0,m,cifar10c,main,acc,0,0.8,h,1,2026-03-01T12:00:00Z\n"
    )
    (seed / "experiments" / "results").mkdir(parents=True)
    (seed / "experiments" / "results" / "exp1_cifar10c_main_s0.csv").symlink_to(secret)
    proc = import_seed(seed)
    assert proc.returncode == 0
    assert "exp1_cifar10c_main_s0: done under the seed; no final metrics" in proc.output
    done = StateFile.loads((seed / "dispatch" / "state.json").read_text()).by_id()["exp1_cifar10c_main_s0"]
    assert done.results == ()
