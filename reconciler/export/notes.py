"""Experiment notes ``experiments/logs/<EXP_ID>.md`` (pure): one per experiment x seed, named by its
id as in the seed.

``notes_for(desired, before, after, results)`` returns the notes a pass must (re)write, as
``{project-relative path: text}``:

* at the first launch (attempt 0 -> 1): purpose (the definition's name and description, the spec's
  description), setup (command template, target, design cell) and the expected outcome (the design
  cell's purpose, the column's metric and direction, the best baseline to beat);
* at each new attempt (a retry): the same, with the attempts so far;
* when the run ends (done, failed or cancelled): the result (metric, value, difference with the
  best baseline of its design column), every attempt with its command, exit code and failure
  class, and the wandb and Hugging Face links.

Section titles are the seed's (``## Motivation``, ``## Setup``, ``## Expected Outcome``, ``## Actual
Result``, ``## Observations & Notes``): the seed's dashboard takes an experiment's description from
``## Motivation``. The text depends only on its inputs (no clock), so rendering twice gives the same bytes. The last
section, ``## Observations & Notes``, belongs to people: ``keep_observations`` carries it over
when the file is rewritten (``reconciler.export.writer.write_notes`` does this on disk).
"""

from __future__ import annotations

from reconciler.export.tables import CellView, ResultRows, TableView, derive_tables, seed_value
from reconciler.model.design import Definition
from reconciler.model.desired import DesiredState
from reconciler.model.spec import ExperimentSpec
from reconciler.model.status import StateFile, StatusEntry

OBSERVATIONS = "## Observations & Notes"
LOGS_DIR = "experiments/logs"


def note_path(exp_id: str) -> str:
    return f"{LOGS_DIR}/{exp_id}.md"


def due_ids(before: StateFile, after: StateFile) -> list[str]:
    """The experiments whose note a pass that turned ``before`` into ``after`` must (re)write."""
    old = before.by_id()
    return [e.id for e in after.entries if _due(old.get(e.id), e)]


def notes_for(desired: DesiredState, before: StateFile, after: StateFile, results: ResultRows) -> dict[str, str]:
    """The notes to (re)write after a pass that turned ``before`` into ``after``."""
    wanted = set(due_ids(before, after))
    due = [e for e in after.entries if e.id in wanted]
    if not due:
        return {}
    found = Lookup(desired, derive_tables(desired, after, results))
    return {note_path(e.id): render_note(desired, e, results, found) for e in due}


def _due(old: StatusEntry | None, new: StatusEntry) -> bool:
    if new.attempt >= 1 and (old is None or old.attempt != new.attempt):
        return True
    return new.status.final and new.attempt >= 1 and (old is None or not old.status.final)


class Lookup:
    """What each note looks up (its definition, its design cell), indexed once per pass: a scan
    of every definition and cell per note made a pass that writes 10,000 notes quadratic."""

    def __init__(self, desired: DesiredState, views: list[TableView]) -> None:
        self.definitions: dict[str, tuple[int, Definition]] = {}
        for k, d in enumerate(desired.definitions):
            self.definitions.setdefault(d.id, (k, d))  # the first of a repeated id, as a scan finds it
        self.cells: dict[str, tuple[TableView, CellView]] = {}
        for view in views:
            for cell in view.cells.values():
                for exp_id in cell.exp_ids:
                    self.cells.setdefault(exp_id, (view, cell))

    def definition(self, entry: StatusEntry) -> Definition | None:
        """The definition whose id is the entry's ``experiment_id`` or its id (the one listed
        first), else the longest ``<id>_`` prefix of its id."""
        exact = [hit for key in (entry.experiment_id, entry.id) if key and (hit := self.definitions.get(key))]
        if exact:
            return min(exact, key=lambda hit: hit[0])[1]
        cut = entry.id.rfind("_")
        while cut > 0:
            if (hit := self.definitions.get(entry.id[:cut])) is not None:
                return hit[1]
            cut = entry.id.rfind("_", 0, cut)
        return None

    def cell(self, exp_id: str) -> tuple[TableView, CellView] | None:
        return self.cells.get(exp_id)


def _best_baseline(view: TableView, col: str) -> tuple[str, CellView] | None:
    direction = next((c.direction for c in view.cols if c.id == col), "higher")
    best: tuple[str, CellView] | None = None
    for row in view.rows:
        cell = view.cell(row.id, col)
        if row.group != "baseline" or cell is None or cell.mean is None:
            continue
        if (
            best is None
            or best[1].mean is None
            or ((cell.mean < best[1].mean) if direction == "lower" else (cell.mean > best[1].mean))
        ):
            best = (row.label or row.id, cell)
    return best


def render_note(desired: DesiredState, entry: StatusEntry, results: ResultRows, found: Lookup) -> str:
    spec = desired.spec(entry.id)
    definition = found.definition(entry)
    placed = found.cell(entry.id)
    lines = [f"# {entry.id}", ""]
    facts = [
        ("Phase", entry.phase),
        ("Stage", str(entry.stage)),
        ("Group", entry.group),
        ("Method", entry.method),
        ("Dataset", entry.dataset),
        ("Seed", "" if entry.seed is None else str(entry.seed)),
    ]
    lines.append("- " + " · ".join(f"{k}: {v}" for k, v in facts if v))
    manual = f", {entry.manual_retries} manual" if entry.manual_retries else ""
    retries = f"automatic retries {entry.retry_count} of {entry.max_retries}{manual}"
    lines.append(f"- Status: {entry.status.value} (attempt {entry.attempt}; {retries})")
    lines.append(f"- Git commit: {entry.git_commit or '—'}")
    lines.append(f"- Started: {entry.started or '—'} · Finished: {entry.finished or '—'}")
    lines.append(f"- wandb: {_link(entry.wandb_run_id)}")
    lines.append(f"- Hugging Face: {_link(entry.hf_artifact_url)}")
    lines += ["", "## Motivation", ""]
    purpose = []
    if definition is not None:
        purpose.append(f"{definition.name}: {definition.description}".strip(": "))
    if spec is not None and spec.description:
        purpose.append(spec.description)
    lines += purpose or ["(no definition or description in experiments/definitions.json or dispatch/*.yaml)"]
    lines += ["", "## Setup", ""]
    lines += _command_lines(entry, spec)
    lines.append(f"- Target: {entry.target or '—'}")
    if placed is not None:
        view, cell = placed
        row = next((r.label for r in view.rows if r.id == cell.row), cell.row)
        col = next((c.label for c in view.cols if c.id == cell.col), cell.col)
        lines.append(f"- Design: {view.title or view.name}, row {row}, column {col}")
    lines += ["", "## Expected Outcome", ""]
    lines += _expected(entry, placed)
    if entry.status.final:
        lines += ["", "## Actual Result", ""]
        lines += _result(entry, results, placed)
    lines += ["", "## Attempts", ""]
    lines += _attempts(entry)
    lines += ["", OBSERVATIONS, "", "(For people: the reconciler keeps this section when it rewrites the file.)"]
    return "\n".join(lines) + "\n"


def _command_lines(entry: StatusEntry, spec: ExperimentSpec | None) -> list[str]:
    """The entry's command (that of its newest attempt: what ran, or runs next), and the spec's
    when it changed since and has not run yet (out of sync)."""
    out = [f"- Command: `{entry.command or '—'}`"]
    if spec is not None and entry.condition("OutOfSync") is not None and spec.command != entry.command:
        out.append(f"- Spec now (out of sync, not run yet): `{spec.command}`")
    return out


def _expected(entry: StatusEntry, placed: tuple[TableView, CellView] | None) -> list[str]:
    if placed is None:
        return ["(the experiment is in no design table)"]
    view, cell = placed
    col = next((c for c in view.cols if c.id == cell.col), None)
    out = [f"- {cell.purpose or 'no purpose given in the design'}"]
    if col is not None:
        better = "lower" if col.direction == "lower" else "higher"
        out.append(f"- Measured by {col.metric} ({better} is better)")
        base = _best_baseline(view, cell.col)
        if entry.group != "baseline" and base is not None and base[1].mean is not None:
            out.append(f"- To beat: {base[0]} at {base[1].mean:.4f} (mean over {base[1].n} seeds)")
    return out


def _result(entry: StatusEntry, results: ResultRows, placed: tuple[TableView, CellView] | None) -> list[str]:
    if entry.status.value != "done":
        why = entry.escalation.reason if entry.escalation else (entry.failure_class or "")
        return [f"{entry.status.value.capitalize()} at {entry.finished or '—'}" + (f": {why}" if why else "") + "."]
    rows = results.get(entry.id, ())
    metrics = sorted({(r.get("metric") or "") for r in rows if r.get("metric")})
    out = [f"Completed at {entry.finished or '—'}.", ""]
    if not metrics:
        return [*out, "(no result rows)"]
    col_metric, base = None, None
    if placed is not None:
        view, cell = placed
        col = next((c for c in view.cols if c.id == cell.col), None)
        if col is not None:
            col_metric = col.metric
            found = _best_baseline(view, cell.col)
            if found is not None and entry.group != "baseline":
                base = (found[0], found[1].mean, col.direction)
    out += ["| Metric | Value | vs. baseline |", "| --- | --- | --- |"]
    for metric in metrics:
        value = seed_value(rows, metric)
        versus = "—"
        if metric == col_metric and base is not None and base[1] is not None and value is not None:
            delta = value - base[1] if base[2] != "lower" else base[1] - value
            versus = f"{delta:+.4f} vs {base[0]} ({base[1]:.4f})"
        out.append(f"| {metric} | {'—' if value is None else f'{value:.4f}'} | {versus} |")
    return out


def _attempts(entry: StatusEntry) -> list[str]:
    if not entry.attempts:
        return ["(none yet)"]
    out = ["| # | Target | Host | Started | Finished | Exit | Failure class | Command |"]
    out.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for a in sorted(entry.attempts, key=lambda a: a.n):
        cells = [
            str(a.n),
            a.target,
            a.host or "—",
            a.started or "—",
            a.finished or "—",
            "—" if a.exit_code is None else str(a.exit_code),
            a.failure_class or "—",
            f"`{a.command}`",
        ]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return out


def _link(value: str | None) -> str:
    if not value:
        return "—"
    return f"<{value}>" if value.startswith(("http://", "https://")) else value


def keep_observations(new: str, old: str | None) -> str:
    """``new`` with its ``## Observations & Notes`` section replaced by the one in ``old``."""
    if not old or OBSERVATIONS not in old or OBSERVATIONS not in new:
        return new
    return new[: new.index(OBSERVATIONS)] + old[old.index(OBSERVATIONS) :]
