"""Real projects for the export tests: a copy of ``examples/project`` in its own git repository,
with a status file and result files built from the real desired state (``load_desired``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from reconciler.load import load_desired
from reconciler.model.desired import DesiredState
from reconciler.model.escalation import Escalation
from reconciler.model.status import Attempt, StateFile, Status, StatusEntry
from reconciler.results import COLUMNS
from reconciler.statestore import write_state

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "project"
FINISHED = "2026-11-26T10:00:00+00:00"

# accuracy per seed 0, 1, 2 (loss = 1 - accuracy)
VALUES: dict[str, tuple[float, ...]] = {
    "logreg_blobs": (0.90, 0.92, 0.94),
    "logreg_moons": (0.84, 0.85, 0.86),
    "mlp_blobs": (0.91, 0.93, 0.95),
    "mlp_moons": (0.95, 0.96, 0.97),
}


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@localhost",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@localhost",
    }
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def example_repo(dest: Path) -> Path:
    """The example project, committed in a fresh repository at ``dest``."""
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", ".reconciler", "results"))
    (dest / ".gitignore").write_text(".reconciler/\n")
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "desired state")
    return dest


def result_csv(exp_id: str, method: str, dataset: str, group: str, seed: int, accuracy: float) -> str:
    lines = [",".join(COLUMNS)]
    for metric, value in (("accuracy", accuracy), ("loss", round(1 - accuracy, 6))):
        lines.append(f"{exp_id},{method},{dataset},{group},{metric},{seed},{value},host1,0,2026-11-26T10:00:00Z")
    return "\n".join(lines) + "\n"


def entry_for(desired: DesiredState, exp_id: str, status: Status, **changes: object) -> StatusEntry:
    spec = desired.by_id()[exp_id]
    attempt = Attempt(
        n=1,
        target="local",
        command=f"python3 train.py --exp {exp_id}",
        run_dir=f"/runs/{exp_id}/1",
        token="t",
        host="host1",
        started="2026-11-26T09:00:00+00:00",
        finished=FINISHED if status.final else None,
        exit_code=0 if status is Status.DONE else (1 if status is Status.FAILED else None),
        failure_class="cuda_oom" if status is Status.FAILED else None,
    )
    fields: dict[str, object] = {
        "id": exp_id,
        "status": status,
        "command": spec.command,
        "phase": spec.phase,
        "group": spec.group.value,
        "method": spec.method,
        "dataset": spec.dataset,
        "seed": spec.seed,
        "stage": spec.stage,
        "max_retries": 2,
        "experiment_id": spec.base_id,
        "result_file": spec.result_path,
        "target": "local",
        "host": "host1",
        "attempt": 1,
        "attempts": (attempt,),
        "started": attempt.started,
        "finished": attempt.finished,
        "failure_class": attempt.failure_class,
    }
    if status is Status.ON_HOLD:
        fields["escalation"] = Escalation("timeout at 3x expected duration", "2026-11-26T09:30:00+00:00", "retry")
    fields.update(changes)
    return StatusEntry(**fields)  # type: ignore[arg-type]


def populate(
    project: Path, statuses: Mapping[str, Status] | None = None, values: Mapping[str, tuple[float, ...]] = VALUES
) -> StateFile:
    """Write ``dispatch/state.json`` (every experiment done unless ``statuses`` says otherwise) and
    the result file of each done run."""
    desired = load_desired(project)
    entries = []
    for spec in desired.experiments:
        status = (statuses or {}).get(spec.id, Status.DONE)
        entries.append(entry_for(desired, spec.id, status))
        if status is Status.DONE:
            accuracy = values[spec.base_id][spec.seed or 0]
            path = project / spec.result_path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(result_csv(spec.id, spec.method, spec.dataset, spec.group.value, spec.seed or 0, accuracy))
    state = StateFile(project="example").with_entries(tuple(entries))
    write_state(project, state)
    return state
