"""``reconcile validate [PATH | -C DIR] [--rev REV] [--json]``: check a project's files; never writes anything.

Reports every problem as ``file:line:col: field: message`` (file relative to the project) and exits
0 when the project is valid, 2 when it is not. PATH is the project directory, or any file or folder
inside it (the project is the nearest folder above holding ``config/reconciler.yaml``, without
leaving the git work tree). ``--rev`` checks the files committed at a revision instead of the
working tree (what a pass would read). This is what pre-commit and the GitHub Action run.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import click

from reconciler.commands.common import EXIT_INVALID, EXIT_OK, project_option, run_guarded
from reconciler.commands.display import say
from reconciler.errors import ConfigError, GitStoreError, Problem
from reconciler.load import Report, inspect
from reconciler.load.sources import CONFIG


def find_project(path: Path) -> Path:
    """The project holding ``path``: the nearest folder (``path`` itself first) with the config."""
    path = path.resolve()
    start = path if path.is_dir() else path.parent
    for folder in (start, *start.parents):
        if (folder / CONFIG).is_file():
            return folder
        if (folder / ".git").exists():
            break  # a project never sits above its repository
    return start


def _display(folder: Path) -> str:
    rel = os.path.relpath(folder, Path.cwd())
    return str(folder) if rel.startswith("..") else rel


def _missing(path: Path) -> int:
    raise ConfigError(f"{path} does not exist: give the project (or a file in it) as PATH or -C DIR")


def _inspect_rev(project: Path, rev: str) -> tuple[Report, str]:
    from reconciler.gitstore import ProjectRepo  # only --rev needs git

    with ProjectRepo(project) as repo, repo.tree(rev) as tree:
        return inspect(tree, revision=tree.sha), tree.sha


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _print(report: Report, name: str, as_json: bool) -> None:
    if as_json:
        payload = {"valid": report.valid, "problems": [asdict(p) for p in report.problems]}
        click.echo(json.dumps(payload, indent=2))
        return
    for problem in report.problems:
        say(str(problem))
    if report.valid:
        files = _count(len(report.files), "file")
        click.echo(f"{name}: valid ({files}, {_count(report.experiments, 'experiment')})")
    else:
        bad = _count(len({p.file for p in report.problems}), "file")
        click.echo(f"{name}: invalid ({_count(len(report.problems), 'problem')} in {bad})")


@click.command("validate")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@project_option
@click.option("--rev", default=None, metavar="REV", help="Check the files committed at REV, not the working tree.")
@click.option("--json", "as_json", is_flag=True, help='Print {"valid": bool, "problems": [...]} as JSON.')
def validate(path: Path | None, project_dir: Path, rev: str | None, as_json: bool) -> None:
    """Check the project's files (schemas and cross-file checks). Exit 0: valid; 2: invalid.
    PATH (or -C DIR): the project, or a file or folder in it."""
    path = path or project_dir
    if not path.exists():
        sys.exit(run_guarded(lambda: _missing(path), as_json=as_json))
    project = find_project(path)
    name = _display(project)
    if rev is None:
        report = inspect(project)
    else:
        try:
            report, sha = _inspect_rev(project, rev)
        except GitStoreError as exc:
            report = Report((Problem(".", 1, 1, "", f"git: {exc}"),), (), None)
            sha = rev
        name = f"{name}@{sha[:12]}"
    _print(report, name, as_json)
    sys.exit(EXIT_OK if report.valid else EXIT_INVALID)
