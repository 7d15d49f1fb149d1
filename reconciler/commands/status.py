"""``reconcile status [--json]``: the experiments as last committed (no network, no lock), with
the newest probe counters, job progress and GPU memory the last pass kept in ``.reconciler/``
(those are committed only with a transition: ``reconciler.model.volatile``)."""

from __future__ import annotations

import json
from collections.abc import Callable
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
from reconciler.gitstore.tree import GitTree
from reconciler.load import load_desired
from reconciler.model.status import StateFile, Status, StatusEntry
from reconciler.model.vram import VRAM_FILE, VramBook, VramEstimate
from reconciler.plan.vram import with_estimates
from reconciler.statestore import OWNED, STATE, current_state

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
        tree = repo.tree(rev)
        text = tree.read_text(STATE)
        vram = _vram(tree, lambda: repo.last_change(rev, exclude=OWNED))
    try:
        state = StateFile.loads(text) if text else StateFile(project="")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ReconcilerError(f"{STATE} at {rev} is corrupt ({exc}); the next pass restores it") from exc
    if rev == "HEAD":
        state = current_state(project_dir, state)
    if as_json:
        docs = [e.to_dict() for e in state.entries]
        for doc in docs:
            if doc["id"] in vram:
                doc["vram_estimate"] = {"gb": vram[doc["id"]].gb, "source": vram[doc["id"]].source}
        click.echo(json.dumps(docs, indent=2, sort_keys=True))
    else:
        _table(state, vram)
    needs_attention = any(e.status in (Status.FAILED, Status.ON_HOLD, Status.UNREACHABLE) for e in state.entries)
    return EXIT_STALLED if needs_attention else EXIT_OK


def _vram(tree: GitTree, revision: Callable[[], str | None]) -> dict[str, VramEstimate]:
    """Each experiment's VRAM estimate and its source, when the project has measurements
    (``experiments/vram.json``); else nothing (the specs' own numbers, not shown)."""
    data = tree.read_text(VRAM_FILE)
    book = VramBook.loads(data) if data else VramBook()
    if not book.measurements:
        return {}
    try:
        desired = load_desired(tree, revision=revision())
    except ReconcilerError:
        return {}
    return with_estimates(desired, book)[1]


def _table(state: StateFile, vram: dict[str, VramEstimate] | None = None) -> None:
    console = Console()
    if not state.entries:
        console.print("no experiments recorded yet (run `reconcile --once`)")
        return
    vram = vram or {}
    table = Table(title=_text(f"{state.project} — {_summary(state)}"), title_justify="left")
    columns = ["experiment", "status", "target", "gpu", "attempt", "retries", "age", "why"]
    show_vram = bool(vram) or any(e.gpu_memory is not None for e in state.entries)
    if show_vram:
        columns.insert(4, "vram")
    for col in columns:
        table.add_column(col, no_wrap=col in ("experiment", "status"))
    now = datetime.now(timezone.utc)
    for e in state.entries:
        style = _STYLE.get(e.status, "")
        cells = [
            _text(e.id),
            Text(e.status.value, style=style),
            _text(e.target or ""),
            _text(",".join(map(str, e.current.gpus)) if e.current and e.current.gpus else ""),
            _text(str(e.attempt) if e.attempt else ""),
            _text(retries(e)),
            _text(_age(e, now)),
            _text(_why(e)),
        ]
        if show_vram:
            cells.insert(4, _vram_cell(e, vram.get(e.id)))
        table.add_row(*cells)
    console.print(table)


def _vram_cell(e: StatusEntry, est: VramEstimate | None) -> Text:
    """What placement reserves for the experiment and where that came from; for a run seen on a
    GPU, what it uses beside it (red when over its reservation)."""
    parts = [est.describe()] if est is not None else []
    memory = e.gpu_memory
    if memory is not None and (e.status.active or e.status is Status.ON_HOLD or memory.over):
        parts.append(("used: " if e.status.active else "last seen: ") + memory.describe())
    return Text(terminal_safe("; ".join(parts)), style="red" if memory is not None and memory.over else "")


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
