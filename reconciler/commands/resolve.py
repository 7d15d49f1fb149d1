"""``reconcile resolve EXP --retry|--continue|--fail|--cancel`` (or ``--approve-stage N``):
write a decision into ``dispatch/decisions.yaml`` and commit that file alone. The next pass
carries it out exactly once (the status records which decisions were applied)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import yaml

from reconciler.atomic import atomic_write_text
from reconciler.commands.common import EXIT_OK, exit_codes, json_option, project_option
from reconciler.commands.complete import experiment_ids
from reconciler.errors import ConfigError, ReconcilerError, SchemaError
from reconciler.gitstore.repo import ProjectRepo
from reconciler.gitstore.writer import commit_status
from reconciler.load import validate
from reconciler.model.config import GitSettings
from reconciler.session import Locking, open_project

DECISIONS = "dispatch/decisions.yaml"
HEADER = "# yaml-language-server: $schema=../config/schemas/decisions.schema.json\n"


@click.command("resolve")
@project_option
@click.argument("exp_id", required=False, shell_complete=experiment_ids)
@click.option("--retry", "action", flag_value="retry", help="Run it again (one more attempt).")
@click.option("--continue", "action", flag_value="continue", help="Let a held run go on (or pend again).")
@click.option("--fail", "action", flag_value="fail", help="Mark it failed (a live run is killed).")
@click.option("--cancel", "action", flag_value="cancel", help="Cancel it (a live run is killed).")
@click.option("--approve-stage", type=int, help="Let stage N start although an earlier stage failed.")
@click.option("--note", default="", help="Why; kept with the decision and in the status notes.")
@json_option
@exit_codes
def resolve(
    project_dir: Path, exp_id: str | None, action: str | None, approve_stage: int | None, note: str, as_json: bool
) -> int:
    """Record a decision on EXP_ID (or approve a stage) and commit it."""
    if approve_stage is not None:
        if action or exp_id:
            raise click.UsageError("--approve-stage takes no experiment and no other action")
        action = "approve_stage"
    elif not exp_id or not action:
        raise click.UsageError("give EXP_ID and one of --retry, --continue, --fail, --cancel (or --approve-stage N)")
    with open_project(project_dir, Locking.WAIT) as session:
        project_dir, repo = session.project_dir, session.repo
        if DECISIONS in repo.dirty_paths([DECISIONS]):
            raise ConfigError(f"{DECISIONS} has uncommitted edits; commit or revert them first")
        path = project_dir / DECISIONS
        original = path.read_text(encoding="utf-8") if path.exists() else None
        person = _identity(repo)
        decision = _decision(exp_id, action, approve_stage, note, person[0])
        atomic_write_text(path, _append(original, decision))
        problems = [p for p in validate(project_dir) if p.file == DECISIONS]
        if problems:
            _restore(path, original)
            raise SchemaError(problems)
        what = f"{action} {exp_id}" if exp_id else f"approve stage {approve_stage}"
        settings = GitSettings(author_name=person[0], author_email=person[1])
        try:
            sha = commit_status(
                repo, [DECISIONS], f"resolve: {what}", note, {"Decision": decision["id"]}, settings=settings
            )
        except ReconcilerError:
            _restore(path, original)
            raise
    if as_json:
        click.echo(json.dumps({"decision": decision, "commit": sha}, indent=2, sort_keys=True, default=str))
        return EXIT_OK
    click.echo(f"decision {decision['id']}: {what} (commit {sha[:10] if sha else 'none'}); the next pass applies it")
    return EXIT_OK


def _decision(exp_id: str | None, action: str, stage: int | None, note: str, by: str) -> dict[str, Any]:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    subject = exp_id if exp_id else f"stage{stage}"
    decision: dict[str, Any] = {"id": f"{subject}-{action}-{now.strftime('%Y%m%dT%H%M%SZ')}", "action": action}
    if exp_id:
        decision["exp"] = exp_id
    if stage is not None:
        decision["stage"] = stage
    if note:
        decision["reason"] = note
    if by:
        decision["by"] = by
    decision["at"] = now.isoformat()
    return decision


def _append(original: str | None, decision: dict[str, Any]) -> str:
    """The file with ``decision`` added; comment lines at the top are kept."""
    data: dict[str, Any] = {"version": 1, "decisions": []}
    header = HEADER
    if original is not None:
        loaded = yaml.safe_load(original) or {}
        if isinstance(loaded, dict):
            data.update(loaded)
        lead = []
        for line in original.splitlines(keepends=True):
            if not line.startswith("#"):
                break
            lead.append(line)
        header = "".join(lead)
    decisions = list(data.get("decisions") or [])
    decisions.append(decision)
    data["decisions"] = decisions
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)


def _restore(path: Path, original: str | None) -> None:
    if original is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write_text(path, original)


def _identity(repo: ProjectRepo) -> tuple[str, str]:
    def get(key: str) -> str:
        done = repo.execute("config", key)
        return done.stdout.strip() if done.ok else ""

    return get("user.name") or "reconcile resolve", get("user.email") or "reconciler@localhost"
