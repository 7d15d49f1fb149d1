"""What the page asks for on demand: a decision, a run's log tail, an experiment's git history.

- ``decide`` runs ``reconcile resolve`` itself (a child process of the same interpreter): the
  dashboard's buttons take exactly the command's code path (validation, the project lock, the
  commit of ``dispatch/decisions.yaml`` alone), and its messages come back to the page as they are.
- ``log_tail`` reads ``stdout.log`` of an attempt's run dir through the target's own transport
  (``reconciler.targets.open_runners``): a local subprocess or the SSH connection, as a pass would.
- ``history`` is ``reconcile log``'s walk over the commits of ``dispatch/state.json``.
"""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.dashboard.views import DECISION_WORDS, jsonable
from reconciler.errors import ReconcilerError
from reconciler.export.notes import LOGS_DIR
from reconciler.gitstore.history import experiment_history
from reconciler.gitstore.repo import ProjectRepo
from reconciler.gitstore.tree import GitTree
from reconciler.model.config import Config
from reconciler.model.statecheck import NAME
from reconciler.model.status import StatusEntry
from reconciler.targets import Unsupported, open_runners

RESOLVE_TIMEOUT = 120.0
"""``reconcile resolve`` waits up to a minute for the project lock (a pass holds it briefly)."""
MAX_LOG_LINES = 2000
MAX_LOG_BYTES = 1024 * 1024
"""The log endpoint reads at most this many bytes from the end of ``stdout.log`` (``tail -c``):
a 400 MB one-line log made ``tail -n`` send all of it."""
MAX_LOG_LINE = 2000
"""Characters shown of one log line (its end, after ``…``)."""


class BadRequest(ValueError):
    """The request names something that does not exist or is not allowed (HTTP 400/404)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class DecisionRequest:
    action: str
    exp_id: str | None = None
    stage: int | None = None
    note: str = ""

    @classmethod
    def from_json(cls, doc: Any) -> DecisionRequest:
        if not isinstance(doc, dict):
            raise BadRequest("send a JSON object")
        action, exp_id, stage, note = doc.get("action"), doc.get("exp_id"), doc.get("stage"), doc.get("note", "")
        if not isinstance(note, str) or len(note) > 2000:
            raise BadRequest("note: a string of at most 2000 characters")
        if "\0" in note or (isinstance(exp_id, str) and "\0" in exp_id):
            raise BadRequest("a NUL character cannot be passed to reconcile resolve")
        if action == "approve_stage":
            if not isinstance(stage, int) or isinstance(stage, bool) or stage < 1:
                raise BadRequest("approve_stage needs stage: a positive integer")
            return cls(action, None, stage, note)
        if action not in DECISION_WORDS:
            raise BadRequest(f"action: one of {', '.join((*DECISION_WORDS, 'approve_stage'))}")
        if not isinstance(exp_id, str) or not exp_id:
            raise BadRequest("exp_id: the experiment the decision is about")
        return cls(action, exp_id, None, note)

    def argv(self, project_dir: Path) -> list[str]:
        base = [sys.executable, "-m", "reconciler", "resolve", "-C", str(project_dir)]
        note = ["--note", self.note] if self.note else []
        if self.action == "approve_stage":
            return [*base, "--approve-stage", str(self.stage), *note]
        return [*base, f"--{self.action}", *note, "--", str(self.exp_id)]


def decide(project_dir: Path, request: DecisionRequest, known: set[str]) -> dict[str, Any]:
    """Record the decision with ``reconcile resolve``; ``ok`` is its exit status 0."""
    if request.exp_id is not None and request.exp_id not in known:
        raise BadRequest(f"no experiment {request.exp_id!r} in the status", status=404)
    try:
        done = subprocess.run(
            request.argv(project_dir),
            cwd=project_dir,
            capture_output=True,
            text=True,
            timeout=RESOLVE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "rc": None, "output": f"reconcile resolve did not finish in {RESOLVE_TIMEOUT:g} s"}
    output = (done.stdout + done.stderr).strip()
    return {"ok": done.returncode == 0, "rc": done.returncode, "output": output}


def log_tail(project_dir: Path, config: Config, entry: StatusEntry, attempt: int | None, lines: int) -> dict[str, Any]:
    """The last ``lines`` lines of the attempt's ``stdout.log``, read on its target."""
    n = entry.attempt if attempt is None else attempt
    found = [a for a in entry.attempts if a.n == n]
    if not found:
        raise BadRequest(f"{entry.id} has no attempt {n}", status=404)
    run = found[0]
    lines = max(1, min(lines, MAX_LOG_LINES))
    if run.target not in config.target_names:
        return {"ok": False, "attempt": n, "target": run.target, "error": f"target {run.target} is not configured"}
    path = _remote_path(run.run_dir.rstrip("/") + "/stdout.log")
    script = (
        f'f={path}; if [ -f "$f" ] && [ ! -L "$f" ]; then tail -c {MAX_LOG_BYTES} -- "$f" | tail -n {lines}; '
        'else echo "no log at $f (or not a regular file)" >&2; exit 3; fi'
    )
    try:
        rc, out, err = asyncio.run(_run_on(config, project_dir, run.target, script))
    except ReconcilerError as exc:
        return {"ok": False, "attempt": n, "target": run.target, "error": str(exc)}
    if rc != 0:
        return {"ok": False, "attempt": n, "target": run.target, "error": (err or out).strip()}
    shown = [line if len(line) <= MAX_LOG_LINE else "…" + line[-MAX_LOG_LINE:] for line in out.splitlines()[-lines:]]
    return {"ok": True, "attempt": n, "target": run.target, "run_dir": run.run_dir, "lines": shown}


async def _run_on(config: Config, project_dir: Path, target: str, script: str) -> tuple[int, str, str]:
    runners = open_runners(config, project_dir)
    try:
        runner = runners.by_name[target]
        if isinstance(runner, Unsupported):
            raise ReconcilerError(f"target {target}: its kind cannot be reached by this version")
        done = await runner.transport.run(script, timeout=30.0, max_output=MAX_LOG_BYTES + 4096)
        return done.returncode, done.stdout, done.stderr
    finally:
        await runners.close()


def _remote_path(path: str) -> str:
    """Quote for ``sh``; a leading ``~/`` stays expandable on the target."""
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def history(project_dir: Path, exp_id: str) -> list[dict[str, Any]]:
    """The experiment's transitions, newest first, each with its commit."""
    with ProjectRepo(project_dir) as repo:
        items = [jsonable(t) for t in experiment_history(repo, exp_id)]
    for item in items:
        item["kind"] = "transition" if "to_status" in item else "unreadable"
    return list(reversed(items))


MAX_NOTES_BYTES = 256 * 1024
"""The most of an experiment's notes file the seed's ``/api/logfile`` route returns."""


def notes_file(project_dir: Path, commit: str | None, exp_id: str) -> dict[str, Any]:
    """``experiments/logs/<exp_id>.md`` as committed at ``commit`` (the seed's ``{found, content}``)."""
    if commit is None or not NAME.fullmatch(exp_id):
        return {"found": False, "content": ""}
    with ProjectRepo(project_dir) as repo, GitTree(repo.handle, commit, prefix=repo.prefix) as tree:
        data = tree.read_bytes(f"{LOGS_DIR}/{exp_id}.md")
    if data is None:
        return {"found": False, "content": ""}
    return {"found": True, "content": data[:MAX_NOTES_BYTES].decode("utf-8", errors="replace")}
