"""``reconcile status [ID-GLOB...] [filters] [--json | --wide | --health]``: the experiments as last
committed (no network, no lock), with the newest probe counters, job progress and GPU memory the
last pass kept in ``.reconciler/`` (those are committed only with a transition:
``reconciler.model.volatile``).

The default view is one line per experiment, cut to the terminal's width (the newest "why" line,
never wrapped). On a terminal that cannot hold every row, the rows that need a person come first
and the rest are counted (``--all`` prints every row; piped output always has every row).
``--wide`` draws the full table with wrapped reasons. Filters: ``--status``, ``--phase``,
``--target``, ``--group`` (each repeatable) and id globs (``'sweep_*'``).
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import sys
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path

import click

from reconciler.commands.common import EXIT_OK, EXIT_STALLED, exit_codes, json_option, project_option
from reconciler.commands.complete import experiment_ids, target_names
from reconciler.commands.display import terminal_safe
from reconciler.commands.stateview import read_state
from reconciler.errors import ReconcilerError
from reconciler.gitstore.repo import ProjectRepo
from reconciler.gitstore.tree import GitTree
from reconciler.model.status import StateFile, Status, StatusEntry
from reconciler.model.vram import VRAM_FILE, VramBook, VramEstimate
from reconciler.statestore import OWNED

_COLOR = {
    Status.DONE: "green",
    Status.RUNNING: "cyan",
    Status.QUEUED: "cyan",
    Status.PENDING: None,
    Status.FAILED: "red",
    Status.ON_HOLD: "yellow",
    Status.UNREACHABLE: "magenta",
    Status.CANCELLED: "bright_black",
}
_ORDER = {
    Status.FAILED: 0,
    Status.ON_HOLD: 1,
    Status.UNREACHABLE: 2,
    Status.RUNNING: 3,
    Status.QUEUED: 4,
    Status.PENDING: 5,
    Status.DONE: 6,
    Status.CANCELLED: 7,
}
"""On a terminal too small for every row: the ones that need a person first."""
_STATUSES = [s.value for s in Status]


@click.command("status")
@project_option
@click.argument("ids", nargs=-1, metavar="[ID-GLOB]...", shell_complete=experiment_ids)
@click.option("--status", "statuses", multiple=True, type=click.Choice(_STATUSES), help="Only these statuses.")
@click.option("--phase", "phases", multiple=True, help="Only these phases.")
@click.option("--target", "targets", multiple=True, shell_complete=target_names, help="Only these targets.")
@click.option("--group", "groups", multiple=True, help="Only these groups (main, baseline, ablation, analysis).")
@click.option(
    "--archived", is_flag=True, help="With the archived phases' experiments (dispatch/archive/; read only when asked)."
)
@click.option("-a", "--all", "show_all", is_flag=True, help="Every row, even when the terminal is too small.")
@click.option("-w", "--wide", is_flag=True, help="The full table, reasons wrapped (slow for thousands of rows).")
@json_option
@click.option("--health", is_flag=True, help="The reconcile loop's own last pass: stages, probes, counts.")
@click.option(
    "--rev", default="HEAD", show_default=True, help="Read the status as of this commit (HEAD: newest progress)."
)
@exit_codes
def status(
    project_dir: Path,
    ids: tuple[str, ...],
    statuses: tuple[str, ...],
    phases: tuple[str, ...],
    targets: tuple[str, ...],
    groups: tuple[str, ...],
    archived: bool,
    show_all: bool,
    wide: bool,
    as_json: bool,
    health: bool,
    rev: str,
) -> int:
    """Show the experiments: status, target, GPU, attempt, retries, age, and why it waits or failed.
    Exit 0, or 1 when one shown has failed, is on hold or is unreachable."""
    if health:
        from reconciler.commands.health import show_health

        return show_health(project_dir, as_json)
    vram: dict[str, VramEstimate] = {}

    def estimates(repo: ProjectRepo, tree: GitTree) -> None:
        vram.update(_vram(tree, lambda: repo.last_change(rev, exclude=OWNED)))

    merged: list[bool] = []

    def with_archived(live: StateFile) -> bool:  # asked for, or the filters name an archived phase
        names = {a.phase for a in live.archived}
        known = {e.id for e in live.entries}
        merged.append(archived or bool(names & set(phases)) or any(i not in known and "*" not in i for i in ids))
        return merged[-1]

    state = read_state(project_dir, rev, also=estimates, archived=with_archived)
    entries = select(state.entries, ids, statuses, phases, targets, groups)
    if as_json:
        docs = [e.to_dict() for e in entries]
        for doc in docs:
            if doc["id"] in vram:
                doc["vram_estimate"] = {"gb": vram[doc["id"]].gb, "source": vram[doc["id"]].source}
        click.echo(json.dumps(docs, sort_keys=True, ensure_ascii=False))
    elif wide:
        _table(state.project, entries, vram)
    elif state.entries or not state.archived:
        _lines(state.project, entries, len(state.entries), vram, show_all)
    else:
        click.echo(terminal_safe(f"{state.project} — no live experiment"))
    if not as_json and not wide and state.archived and not any(merged):
        click.echo(_archived_line(state))
    needs_attention = any(e.status in (Status.FAILED, Status.ON_HOLD, Status.UNREACHABLE) for e in entries)
    return EXIT_STALLED if needs_attention else EXIT_OK


def select(
    entries: Iterable[StatusEntry],
    ids: tuple[str, ...] = (),
    statuses: tuple[str, ...] = (),
    phases: tuple[str, ...] = (),
    targets: tuple[str, ...] = (),
    groups: tuple[str, ...] = (),
) -> list[StatusEntry]:
    """The entries the filters keep (each filter: any of its values; all filters together)."""
    out = []
    for e in entries:
        if statuses and e.status.value not in statuses:
            continue
        if phases and e.phase not in phases:
            continue
        if targets and (e.target or "") not in targets:
            continue
        if groups and e.group not in groups:
            continue
        if ids and not any(fnmatch.fnmatchcase(e.id, pattern) for pattern in ids):
            continue
        out.append(e)
    return out


def _vram(tree: GitTree, revision: Callable[[], str | None]) -> dict[str, VramEstimate]:
    """Each experiment's VRAM estimate and its source, when the project has measurements
    (``experiments/vram.json``); else nothing (the specs' own numbers, not shown)."""
    data = tree.read_text(VRAM_FILE)
    book = VramBook.loads(data) if data else VramBook()
    if not book.measurements:
        return {}
    from reconciler.load import load_desired  # only with measurements: the spec is needed then
    from reconciler.plan.vram import with_estimates

    try:
        desired = load_desired(tree, revision=revision())
    except ReconcilerError:
        return {}
    return with_estimates(desired, book)[1]


def _lines(project: str, entries: list[StatusEntry], total: int, vram: dict[str, VramEstimate], show_all: bool) -> None:
    """One line per experiment, cut to the terminal's width; on a terminal too small for them
    all, those that need a person first and the rest counted."""
    if not total:
        click.echo("no experiments recorded yet (run `reconcile --once`)")
        return
    tty = sys.stdout.isatty()
    size = shutil.get_terminal_size((160, 40))
    width = size.columns if tty else 10_000
    shown = entries
    hidden: list[StatusEntry] = []
    room = max(5, size.lines - 4)
    if tty and not show_all and len(entries) > room:
        ranked = sorted(entries, key=lambda e: (_ORDER.get(e.status, 9), e.id))
        shown, hidden = ranked[:room], ranked[room:]
    head = f"{project} — {_summary(entries)}" + (f" (of {total})" if len(entries) != total else "")
    click.echo(terminal_safe(head))
    show_vram = bool(vram) or any(e.gpu_memory is not None for e in shown)
    now = datetime.now(timezone.utc)
    rows = [_cells(e, now, vram.get(e.id) if show_vram else None, show_vram) for e in shown]
    names = ["experiment", "status", "target", "gpu", "attempt", "retries", "age"]
    if show_vram:
        names.append("vram")
    widths = [max([len(n), *(len(r[i]) for r in rows)]) for i, n in enumerate(names)]
    widths = [min(w, 60) for w in widths]
    click.echo(_cut("  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)) + "  why", width))
    color = tty and not _no_color()
    lines = []
    for e, row in zip(shown, rows, strict=True):
        fixed = "  ".join(cell[:w].ljust(w) for cell, w in zip(row[:-1], widths, strict=True))
        line = _cut(f"{fixed}  {row[-1]}".rstrip(), width)
        if color and _COLOR.get(e.status):
            start = len(row[0][: widths[0]].ljust(widths[0])) + 2
            end = start + widths[1]
            line = line[:start] + click.style(line[start:end], fg=_COLOR[e.status]) + line[end:]
        lines.append(line)
    click.echo("\n".join(lines))  # one write: thousands of rows
    if hidden:
        counts = _summary(hidden)
        click.echo(
            f"… {len(hidden)} more ({counts}): --all prints every row; or filter with --status, --phase, "
            "--target, --group or an id glob"
        )


def _no_color() -> bool:
    import os

    return bool(os.environ.get("NO_COLOR"))


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def _cells(e: StatusEntry, now: datetime, est: VramEstimate | None, show_vram: bool) -> list[str]:
    current = e.current
    cells = [
        e.id,
        e.status.value,
        terminal_safe(e.target or ""),
        ",".join(map(str, current.gpus)) if current and current.gpus else "",
        str(e.attempt) if e.attempt else "",
        retries(e),
        _age(e, now),
    ]
    if show_vram:
        cells.append(_vram_short(e, est))
    why = _why(e)
    cells.append(terminal_safe(why.splitlines()[-1]) if why else "")
    return cells  # ids, statuses and target names are checked names: only the texts need escaping


def _table(project: str, entries: list[StatusEntry], vram: dict[str, VramEstimate]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    if not entries:
        console.print("no experiments recorded yet (run `reconcile --once`)")
        return
    table = Table(title=Text(terminal_safe(f"{project} — {_summary(entries)}")), title_justify="left")
    columns = ["experiment", "status", "target", "gpu", "attempt", "retries", "age", "why"]
    show_vram = bool(vram) or any(e.gpu_memory is not None for e in entries)
    if show_vram:
        columns.insert(4, "vram")
    for col in columns:
        table.add_column(col, no_wrap=col in ("experiment", "status"))
    now = datetime.now(timezone.utc)
    for e in entries:
        cells = _cells(e, now, vram.get(e.id), show_vram)
        cells[-1] = terminal_safe(_why(e))
        if show_vram:
            cells[7] = terminal_safe(_vram_text(e, vram.get(e.id)))
        texts = [Text(c) for c in cells]
        texts[1] = Text(cells[1], style=_COLOR.get(e.status) or "")
        if show_vram and e.gpu_memory is not None and e.gpu_memory.over:
            texts[7] = Text(cells[7], style="red")
        table.add_row(*texts)
    console.print(table)


def _vram_short(e: StatusEntry, est: VramEstimate | None) -> str:
    """The vram cell of the compact view: what a live run uses (``14.0/10 GB over``), else the
    estimate and whether it was measured (``--wide`` says where each came from)."""
    memory = e.gpu_memory
    if memory is not None and (e.status.active or memory.over):
        reserved = f"/{memory.reserved_mb / 1024:g}" if memory.reserved_mb is not None else ""
        return f"{memory.peak_mb / 1024:.1f}{reserved} GB peak" + (" over" if memory.over else "")
    if est is None or est.gb is None:
        return est.source if est is not None else ""
    return f"{est.gb:g} GB" + (" measured" if est.measured else f" ({est.source})")


def _vram_text(e: StatusEntry, est: VramEstimate | None) -> str:
    """What placement reserves for the experiment and where that came from; for a run seen on a
    GPU, what it uses beside it."""
    parts = [est.describe()] if est is not None else []
    memory = e.gpu_memory
    if memory is not None and (e.status.active or e.status is Status.ON_HOLD or memory.over):
        parts.append(("used: " if e.status.active else "last seen: ") + memory.describe())
    return "; ".join(parts)


def retries(e: StatusEntry) -> str:
    """``1/2``: automatic retries used of ``max_retries``; ``+1 manual``: retries a person asked
    for (``reconcile resolve --retry``), which the budget does not count."""
    manual = f" +{e.manual_retries} manual" if e.manual_retries else ""
    return f"{e.retry_count}/{e.max_retries}{manual}"


def _archived_line(state: StateFile) -> str:
    counts: dict[str, int] = {}
    for record in state.archived:
        for name, n in record.counts:
            counts[name] = counts.get(name, 0) + n
    total = sum(counts.values())
    what = ", ".join(f"{n:,} {s}" for s, n in sorted(counts.items()))
    phases = len(state.archived)
    return f"+ {total:,} archived in {phases} phase{'s' if phases > 1 else ''} ({what}): --archived lists them"


def _summary(entries: Iterable[StatusEntry]) -> str:
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.status.value] = counts.get(e.status.value, 0) + 1
    return ", ".join(f"{n:,} {s}" for s, n in sorted(counts.items())) or "none"


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
    marks = [c.type.lower() for c in e.conditions if c.type in ("Archived", "Orphaned", "OutOfSync", "OverReservation")]
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
