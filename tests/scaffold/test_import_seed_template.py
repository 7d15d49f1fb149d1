"""``reconcile import-seed`` on a project written from the seed's own templates (issue 17, import).

The fixture's ``config/config.md`` is the seed's Step 0.3 template filled in as its setup phase
does, comments and all; every entry is pending but two archived pilots; seeds of one experiment
differ beyond the seed (they do not fold); the Gadi job script is the Lab's, with storage flags,
jobfs, CPUs and memory of its own.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.load import load_desired
from reconciler.plan.active import checkpoint_path
from reconciler.seedimport.configmd import parse_config_md
from reconciler.seedimport.targets import build_config, read_pbs_scripts
from tests.example.tools import REPO, run, tool
from tests.scaffold.test_import_seed import import_seed

FIXTURE = Path(__file__).parent / "fixtures" / "seed_template_project"


@pytest.fixture
def imported(tmp_path: Path) -> Path:
    seed = Path(shutil.copytree(FIXTURE, tmp_path / "seed"))
    proc = import_seed(seed)
    assert proc.returncode == 0, proc.output
    return seed


def config_of(project: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((project / "config" / "reconciler.yaml").read_text()))


def test_template_comments_and_placeholders_stay_out_of_values() -> None:
    seed = parse_config_md((FIXTURE / "config" / "config.md").read_text())
    assert seed.settings["conda_env"] == "ar_tta_calib"
    assert seed.settings["wandb_project"] == "tta-calib"
    assert seed.settings["wandb_entity"] == "vision-lab"
    assert seed.settings["hf_artifact_repo"] == "alice/tta-calib-artifacts"
    assert seed.settings["artifact_base"] == "huggingface"
    assert seed.settings["gadi_scratch_base"] == "/scratch/ab12/alice"
    assert seed.settings["c500_afs_base"] == "/mnt/afs/alice/intern/alice"
    assert not any("#" in value for value in seed.settings.values())
    unfilled = "c500_afs_base: <FILL_IN>   # AFS base path on C500\nwandb_entity: <wandb-username>    # from wandb\n"
    assert parse_config_md(unfilled).settings == {}


def test_the_compute_sections_are_read() -> None:
    seed = parse_config_md((FIXTURE / "config" / "config.md").read_text())
    assert [m.name for m in seed.machines] == ["xuchang-lab1", "xuchang-lab2", "xuchang-lab3"]
    assert [m.available for m in seed.machines] == [True, True, False]
    assert seed.selected == ("xuchang-lab1", "xuchang-lab2")
    assert seed.uses_c500 and seed.uses_gadi
    assert seed.clusters["docker image"] == "metax_pt (or maca31_pt if CUDA errors)"


def test_a_project_with_only_pending_entries_keeps_its_machines(imported: Path) -> None:
    targets = config_of(imported)["targets"]
    assert set(targets) == {"xuchang-lab1", "xuchang-lab2", "c500", "gadi"}
    assert targets["xuchang-lab2"] == {
        "kind": "ssh",
        "host": "xuchang-lab2",
        "root": "reconciler/tta-calib",
        "env": {"conda": "ar_tta_calib"},
    }


def test_c500_is_the_command_target_of_the_example() -> None:
    """The import builds what ``examples/targets/c500.yaml`` documents (same templates, states
    and factors), with the AFS root, workspace and image the project's config.md names."""
    example = yaml.safe_load((REPO / "examples" / "targets" / "c500.yaml").read_text())["targets"]["c500"]
    image = example["templates"]["submit"].split("--image ")[1].split()[0]
    text = f"c500_afs_base: /mnt/afs  # AFS\n\n## External Clusters\n- Docker image: {image}\n"
    doc, names, notes = build_config("calib", parse_config_md(text), [], "local")
    assert names == {"c500": "c500"} and notes == []
    c500 = dict(doc["targets"]["c500"])
    assert c500.pop("checkpoint_dir") == "/mnt/afs/calib/experiments/checkpoints"  # the seed's, on AFS
    assert c500 == example


def test_c500_in_the_import_uses_the_projects_afs_and_image(imported: Path) -> None:
    c500 = config_of(imported)["targets"]["c500"]
    assert c500["kind"] == "command"
    assert c500["host"] == "finn_cci_c500"
    assert c500["root"] == "/mnt/afs/alice/intern/alice/tta-calib"
    assert "--image metax_pt " in c500["templates"]["submit"]
    assert "--workspace-name aceworld-base" in c500["templates"]["status"]


def test_gadi_keeps_what_the_projects_pbs_scripts_ask_for(imported: Path) -> None:
    gadi = config_of(imported)["targets"]["gadi"]
    assert gadi["kind"] == "pbs"
    assert gadi["root"] == "/scratch/ab12/alice/tta-calib"
    assert gadi["batch"] == {
        "queue": "gpuvolta",
        "account": "ab12",
        "storage": "scratch/ab12+gdata/ab12+gdata/xy9",
        "cpus_per_gpu": 12,
        "mem_gb": 96,
        "modules": ["cuda/12.0.0", "python3/3.10.4"],
        "extra_directives": ["-l jobfs=100GB"],
    }


def test_without_pbs_scripts_gadi_takes_the_config_md_modules() -> None:
    seed = parse_config_md((FIXTURE / "config" / "config.md").read_text())
    doc, _, _ = build_config("tta-calib", seed, ["gadi"], "local", read_pbs_scripts({}))
    assert doc["targets"]["gadi"]["batch"] == {
        "queue": "gpuvolta",
        "account": "ab12",
        "storage": "scratch/ab12",
        "modules": ["cuda/11.7.0", "python3/3.10.4"],
    }


def test_archived_pilots_stay_archived_records(imported: Path) -> None:
    dispatch = yaml.safe_load((imported / "dispatch" / "imported.yaml").read_text())
    ids = {spec["id"] for spec in dispatch["experiments"]}
    assert not any(i.startswith("pilot1") for i in ids)
    state = json.loads((imported / "dispatch" / "state.json").read_text())
    archived = [e for e in state["experiments"] if e["id"].startswith("pilot1")]
    assert len(archived) == 2
    for entry in archived:
        assert entry["status"] == "done"
        assert [c["type"] for c in entry["conditions"]] == ["Archived"]


def test_the_import_validates_when_seeds_do_not_fold(imported: Path) -> None:
    dispatch = yaml.safe_load((imported / "dispatch" / "imported.yaml").read_text())
    ids = {spec["id"] for spec in dispatch["experiments"]}
    assert {"exp1_cifar10c_main_s0", "exp1_cifar10c_main_s1", "exp1_cifar10c_main_s2"} <= ids  # lr differs
    assert "exp2_cifar10c_baseline" in ids  # folded
    proc = run([tool("reconcile"), "validate", str(imported)], cwd=imported)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_checkpoints_the_seeds_runs_wrote_stay_reachable(imported: Path) -> None:
    """The seed's commands wrote ``experiments/checkpoints/<id>/`` under its checkout on each host;
    the target's ``checkpoint_dir`` is that folder, so ``{checkpoint_dir}`` (its ``<EXP_ID>``) is the same
    path and ``--resume`` finds them."""
    targets = config_of(imported)["targets"]
    assert targets["xuchang-lab1"]["checkpoint_dir"] == "/home/alice/projects/tta-calib/experiments/checkpoints"
    assert targets["gadi"]["checkpoint_dir"] == "/scratch/ab12/alice/tta-calib/experiments/checkpoints"
    assert targets["c500"]["checkpoint_dir"] == "/mnt/afs/alice/intern/alice/tta-calib/experiments/checkpoints"
    assert "checkpoint_dir" not in targets["xuchang-lab2"]  # no env verdict: where its checkout is is unknown
    dispatch = yaml.safe_load((imported / "dispatch" / "imported.yaml").read_text())
    spec = next(s for s in dispatch["experiments"] if s["id"] == "exp2_cifar10c_baseline")
    assert "--checkpoint-dir {checkpoint_dir} --resume" in spec["command"]
    desired = load_desired(imported)  # what the planner expands {checkpoint_dir} to, per target
    lab1 = desired.config.target("xuchang-lab1")
    seed_path = "/home/alice/projects/tta-calib/experiments/checkpoints/exp2_cifar10c_baseline_s0"
    assert checkpoint_path(lab1, lab1.root, "exp2_cifar10c_baseline_s0") == seed_path


def test_the_unknown_checkout_is_named_in_the_import_output(tmp_path: Path) -> None:
    seed = Path(shutil.copytree(FIXTURE, tmp_path / "seed"))
    proc = import_seed(seed)
    assert proc.returncode == 0, proc.output
    assert "targets.xuchang-lab2.checkpoint_dir" in proc.output
    assert "seed env verdict for 'xuchang-lab1': ENV_READY" in proc.output


def test_seed_escalations_are_imported(imported: Path) -> None:
    state = {e["id"]: e for e in json.loads((imported / "dispatch" / "state.json").read_text())["experiments"]}
    held = state["exp1_cifar10c_main_s1"]["escalation"]
    assert held["status"] == "open"
    assert held["reason"] == "seed escalation: PBS job held (qstat job_state H)"
    assert held["needed"] == "qrls 1234567.gadi-pbs, or cancel the run"
    assert held["created"] == "2026-11-02T08:30:00+08:00"
    assert "host: gadi" in held["evidence"]
    done = state["pilot1_cifar10c_core_s0"]["escalation"]  # its entry is done: nothing left to decide
    assert done["status"] == "closed" and done["resolution"] == "closed at import: the entry is done"
