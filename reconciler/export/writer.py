"""``reconcile export`` on disk: read, check, write the export files, commit them.

What it reads: the desired state from the committed tree (HEAD), as a pass does; the status from
the working tree (``load_recorded``: the newest truth, restored from the last commit when missing
or corrupt); each done run's result file from the working tree.

What it writes (atomically, ``reconciler.atomic``), only when the guard passes or ``allow_partial``:

    experiments/results/all_results.csv       canonical columns, stable order
    experiments/results/<design name>.md      each design table, mean ± std, best in bold
    experiments/results/pilot_synthesis.md    when a pilot design table exists

Then it commits exactly those files (``gitstore.commit_status``: a temporary index, no hooks, only
on change) with the subject ``export: ...``. It commits itself because the pre-commit guard
refuses hand commits of ``experiments/results/*.csv`` (only the reconciler writes them), and an
export that sat uncommitted would be lost to the audit trail. ``commit=False`` leaves the files in
the working tree. The project lock is held throughout (waited for up to a minute), so a pass
never commits half an export.

``pass_notes`` (the engine's call) and ``write_notes`` write the experiment notes
(``experiments/logs/<EXP_ID>.md``) of a pass, keeping a person's ``## Observations & Notes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.archivestore import with_archived
from reconciler.atomic import atomic_write_text, dirs_synced_once
from reconciler.confine import check_tree
from reconciler.errors import StatusWriteError
from reconciler.export.guard import Completeness, completeness
from reconciler.export.notes import due_ids, keep_observations, notes_for
from reconciler.export.render import document
from reconciler.export.results import ALL_RESULTS, all_results_text, read_result_rows, row_count
from reconciler.export.synthesis import SYNTHESIS, Criteria, Synthesis, markdown, pilot_tables, synthesize
from reconciler.export.tables import TableView, derive_tables
from reconciler.gitstore.history import state_versions
from reconciler.gitstore.repo import ProjectRepo
from reconciler.gitstore.writer import commit_status
from reconciler.load import load_desired
from reconciler.lockfile import waiting_lock
from reconciler.model.desired import DesiredState
from reconciler.model.status import StateFile
from reconciler.statestore import OWNED, STATE, load_recorded


@dataclass
class ExportResult:
    completeness: Completeness
    tables: list[TableView]
    synthesis: Synthesis | None
    written: list[str] = field(default_factory=list)
    commit: str | None = None
    rows: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "complete": self.completeness.complete,
            "guard": self.completeness.to_json(),
            "written": self.written,
            "commit": self.commit,
            "rows": self.rows,
            "recommendation": self.synthesis.recommendation if self.synthesis else None,
            "evidence": list(self.synthesis.evidence) if self.synthesis else [],
            "tables": [t.to_json() for t in self.tables],
            "warnings": self.warnings,
        }


def table_path(view: TableView) -> str:
    return f"experiments/results/{view.name}.md"


def export_project(
    project_dir: Path,
    *,
    allow_partial: bool = False,
    commit: bool = True,
    criteria: Criteria | None = None,
    patience: float = 60.0,
) -> ExportResult:
    project_dir = project_dir.resolve()
    # A symlinked results dir or result file would read (and commit) or write outside the project.
    check_tree(project_dir, ("experiments/results/**", "experiments/logs/**", ".reconciler"), (STATE,))
    criteria = criteria or Criteria()
    with waiting_lock(project_dir, patience), ProjectRepo(project_dir) as repo:
        tree = repo.tree("HEAD")
        desired = load_desired(tree, revision=repo.last_change("HEAD", exclude=OWNED))
        loaded = load_recorded(
            project_dir, tree.read_bytes(STATE), desired.config.project, versions=lambda: state_versions(repo)
        )
        state = with_archived(project_dir, loaded.state, tree.read_bytes)  # the archived phases too
        files = read_result_rows(project_dir, state)
        views = derive_tables(desired, state, files.rows)
        guard = completeness(desired, state, files.rows, files.problems)
        synthesis = synthesize(views, criteria) if pilot_tables(views) else None
        result = ExportResult(guard, views, synthesis, rows=row_count(files.rows))
        if loaded.restored:
            result.warnings.append(loaded.restored)
        if not guard.complete and not allow_partial:
            return result
        outputs = {ALL_RESULTS: all_results_text(files.rows)}
        for view in views:
            outputs[table_path(view)] = document(view)
        if synthesis is not None:
            outputs[SYNTHESIS] = markdown(synthesis, guard, criteria, desired.revision)
        try:
            for rel, text in outputs.items():
                atomic_write_text(project_dir / rel, text)
        except OSError as exc:
            raise StatusWriteError(f"cannot write the export in {project_dir}: {exc}") from exc
        result.written = sorted(outputs)
        if commit:
            result.commit = commit_status(
                repo,
                result.written,
                _subject(result),
                "\n".join(guard.lines()),
                {"Desired-State": desired.revision or "working-tree"},
                settings=desired.config.git,
            )
    return result


def _subject(result: ExportResult) -> str:
    parts = [f"all_results.csv ({result.rows} rows)"]
    if result.tables:
        parts.append(f"{len(result.tables)} design table{'s' if len(result.tables) != 1 else ''}")
    if result.synthesis is not None:
        parts.append(f"pilot synthesis ({result.synthesis.recommendation})")
    partial = "" if result.completeness.complete else " [partial]"
    return "export: " + ", ".join(parts) + partial


def pass_notes(project_dir: Path, desired: DesiredState, before: StateFile, after: StateFile) -> list[str]:
    """The engine's call after writing the status: render and write the notes this pass made due
    (reading the result files only when one is due); the project-relative paths to commit."""
    if not due_ids(before, after):
        return []
    rows = read_result_rows(project_dir, after).rows
    return write_notes(project_dir, notes_for(desired, before, after, rows))


def write_notes(project_dir: Path, notes: Mapping[str, str]) -> list[str]:
    """Write each note (project-relative path -> text) atomically, keeping the person's
    ``## Observations & Notes`` section of the file already there; the paths written."""
    written = []
    with dirs_synced_once():
        for rel, text in sorted(notes.items()):
            path = project_dir / rel
            try:
                old = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                old = None
            new = keep_observations(text, old)
            if new != old:
                atomic_write_text(path, new)
            written.append(rel)
    return written
