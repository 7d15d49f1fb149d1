"""``reconcile status [--json]``: the experiments as last committed (no network, no lock), with
the newest probe counters and job progress the last pass kept in ``.reconciler/`` (those are
committed only with a transition: ``reconciler.model.volatile``)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from reconciler.commands.common import EXIT_OK, EXIT_STALLED, exit_codes, project_option
from reconciler.commands.display import terminal_safe
from reconciler.errors import ReconcilerError
from reconciler.gitstore.repo import ProjectRepo
from reconciler.model.status import StateFile, Status, StatusEntry
from reconciler.statestore import STATE, current_state

_STYLE = {
    Status.DONE: "green",
    Status.RUNNING: "cyan",
    Status.QUEUED: "cyan",
    Status.PENDING: "white",
    Status.FAILED: "red",
    Status.ON_HOLD: "yellow",
    Status.UNREACHABLE: "magenta",
    Status.CANCELLED: "dim",
}


@click.command("status")
@project_option
@click.option("--json", "as_json", is_flag=True, help="Print the committed state.json entries as JSON.")
@click.option(
    "--rev", default="HEAD", show_default=True, help="Read the status as of this commit (HEAD: newest progress)."
)
@exit_codes
def status(project_dir: Path, as_json: bool, rev: str) -> int:
    """Show every experiment: status, target, GPU, attempt, age, and why it waits or failed."""
    with ProjectRepo(project_dir) as repo:
        text = repo.tree(rev).read_text(STATE)
    try:
        state = StateFile.loads(text) if text else StateFile(project="")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ReconcilerError(f"{STATE} at {rev} is corrupt ({exc}); the next pass restores it") from exc
    if rev == "HEAD":
        state = current_state(project_dir, state)
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in state.entries], indent=2, sort_keys=True))
    else:
        _table(state)
    needs_attention = any(e.status in (Status.FAILED, Status.ON_HOLD, Status.UNREACHABLE) for e in state.entries)
    return EXIT_STALLED if needs_attention else EXIT_OK


def _table(state: StateFile) -> None:
    console = Console()
    if not state.entries:
        console.print("no experiments recorded yet (run `reconcile --once`)")
        return
    table = Table(title=_text(f"{state.project} — {_summary(state)}"), title_justify="left")
    for col in ("experiment", "status", "target", "gpu", "attempt", "retries", "age", "why"):
        table.add_column(col, no_wrap=col in ("experiment", "status"))
    now = datetime.now(timezone.utc)
    for e in state.entries:
        style = _STYLE.get(e.status, "")
        table.add_row(
            _text(e.id),
            Text(e.status.value, style=style),
            _text(e.target or ""),
            _text(",".join(map(str, e.current.gpus)) if e.current and e.current.gpus else ""),
            _text(str(e.attempt) if e.attempt else ""),
            _text(retries(e)),
            _text(_age(e, now)),
            _text(_why(e)),
        )
    console.print(table)


def retries(e: StatusEntry) -> str:
    """``1/2``: automatic retries used of ``max_retries``; ``+1 manual``: retries a person asked
    for (``reconcile resolve --retry``), which the budget does not count."""
    manual = f" +{e.manual_retries} manual" if e.manual_retries else ""
    return f"{e.retry_count}/{e.max_retries}{manual}"


def _text(value: str) -> Text:
    """A cell printed as written: no rich markup (``[bold]``), no terminal escapes (``\x1b[2J``)."""
    return Text(terminal_safe(value))


def _summary(state: StateFile) -> str:
    counts: dict[str, int] = {}
    for e in state.entries:
        counts[e.status.value] = counts.get(e.status.value, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def _age(e: StatusEntry, now: datetime) -> str:
    stamp = e.finished if e.status.final else e.started
    if not stamp:
        return ""
    try:
        seconds = (now - datetime.fromisoformat(stamp)).total_seconds()
    except ValueError:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"


def _why(e: StatusEntry) -> str:
    marks = [c.type.lower() for c in e.conditions if c.type in ("Archived", "Orphaned", "OutOfSync")]
    why = _reason(e)
    return "; ".join([*marks, why]) if why else "; ".join(marks)


def _reason(e: StatusEntry) -> str:
    if e.escalation is not None and e.escalation.open:
        return f"escalated: {e.escalation.reason}"
    if e.waiting_reason:
        return e.waiting_reason
    if e.status in (Status.FAILED, Status.ON_HOLD) or (e.status is Status.PENDING and e.failure_class):
        last = e.notes.split("\n")[-1] if e.notes else ""
        return last or (e.failure_class or "")
    return ""
