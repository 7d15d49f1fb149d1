"""What every command shares: the project-dir option, JSON mode, and turning errors into exit codes.

Exit codes (the README's table; ``tests/scaffold/test_exit_codes.py`` runs every row):

- 0 ``EXIT_OK``: done, valid, converged or progressing;
- 1 ``EXIT_STALLED``: something needs a person (a failed, held or unreachable experiment), changes
  are pending (``plan``), or an operation failed for a reason outside the input (a target, git);
- 2 ``EXIT_INVALID``: invalid input (a file, an option, an unknown experiment, a directory that is
  no project or a repository with no commit yet), with a one-line message that says what to do;
  nothing was changed;
- 3 ``EXIT_BUG``: an unexpected error (a bug of ours): a short message, the traceback in
  ``.reconciler/crash.log`` (never on the screen; ``RECONCILER_DEBUG=1`` raises it);
- 75 ``EXIT_LOCKED``: another ``reconcile`` holds the project lock;
- 124 ``EXIT_TIMEOUT``: ``reconcile wait`` ran out of time;
- 130 ``EXIT_INTERRUPTED``: interrupted (Ctrl-C).

In JSON mode (``--json``) stdout holds only the command's JSON document, and an error is one JSON
object on stderr: ``{"error": {"exit": 2, "kind": "invalid", "message": "...", "problems": [...]}}``.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler.commands.display import say
from reconciler.errors import ConfigError, LockHeld, ReconcilerError, SchemaError, describe_bug

EXIT_OK = 0
EXIT_STALLED = 1
EXIT_INVALID = 2
EXIT_BUG = 3
EXIT_LOCKED = 75
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130

CRASH_LOG = ".reconciler/crash.log"

F = TypeVar("F", bound=Callable[..., Any])


def _project_dir(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path:
    """``-C`` of the command, else the one given before it (``reconcile -C DIR status``), else ``.``."""
    if value is not None:
        return value
    parent = ctx.parent.params.get("projects") if ctx.parent is not None else None
    if parent:
        if len(parent) > 1:
            raise click.UsageError(f"`reconcile {ctx.info_name}` takes one project: give one -C DIR", ctx)
        return Path(parent[0])
    return Path(".")


def dir_option(f: F) -> F:
    """``-C DIR`` for the commands that make a project (``init``, ``import-seed``): the directory
    may not exist yet, and ``--project`` is their project's name."""
    return click.option(
        "-C",
        "--dir",
        "dir_option",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="The directory (same as the DIRECTORY argument).",
    )(f)


def chosen_dir(ctx: click.Context, directory: Path | None, option: Path | None) -> Path:
    """DIRECTORY, else ``-C DIR``, else the ``-C`` given before the command, else ``.``."""
    if directory is not None and option is not None and directory != option:
        raise click.UsageError("give the directory once: DIRECTORY or -C DIR", ctx)
    return directory or option or _project_dir(ctx, ctx.command.params[0], None)


def project_option(f: F) -> F:
    return click.option(
        "-C",
        "--project",
        "project_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        callback=_project_dir,
        help="The research project's directory (default: the one given before the command, else .).",
    )(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document (its schema: schemas/cli/).")(
        f
    )


def exit_codes(f: Callable[..., int]) -> Callable[..., None]:
    """Run a command body that returns an exit code; map our errors to codes and messages (as JSON
    on stderr when the command was given ``--json``)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        project = kwargs.get("project_dir")
        as_json = bool(kwargs.get("as_json"))

        def body() -> int:
            if isinstance(project, Path):
                require_dir(project)
            return f(*args, **kwargs)

        sys.exit(run_guarded(body, as_json=as_json, project_dir=project if isinstance(project, Path) else None))

    return wrapper


def require_dir(project: Path) -> None:
    """A ``-C`` that names nothing is invalid input, said in one line."""
    if not project.exists():
        raise ConfigError(f"{project} does not exist: give the project's directory with -C DIR")
    if not project.is_dir():
        raise ConfigError(f"{project} is not a directory: give the project's directory with -C DIR")


def run_guarded(body: Callable[[], int], *, as_json: bool = False, project_dir: Path | None = None) -> int:
    try:
        return body()
    except click.ClickException:  # a usage error found by the command itself: click says it (exit 2)
        raise
    except SchemaError as exc:
        if as_json:
            return _json_error(EXIT_INVALID, "invalid", str(exc.problems[0]) if exc.problems else "", exc)
        for problem in exc.problems:
            say(str(problem), err=True)
        click.echo(f"invalid desired state: {len(exc.problems)} problem(s); nothing was changed", err=True)
        return EXIT_INVALID
    except ConfigError as exc:
        return _error(EXIT_INVALID, "invalid", f"error: {exc}", as_json)
    except LockHeld as exc:
        return _error(EXIT_LOCKED, "locked", f"reconcile: {exc}", as_json)
    except ReconcilerError as exc:
        return _error(EXIT_STALLED, "failed", f"error: {exc}", as_json)
    except KeyboardInterrupt:
        return _error(EXIT_INTERRUPTED, "interrupted", "interrupted", as_json)
    except OSError as exc:  # the controller's own disk or permissions, outside any boundary
        return _error(EXIT_STALLED, "failed", f"error: {exc}", as_json)
    except Exception as exc:  # no input ends in a traceback; the bug is named, and reported
        if os.environ.get("RECONCILER_DEBUG"):
            raise
        where = _crash_log(exc, project_dir)
        place = f"the traceback is in {where}" if where else "set RECONCILER_DEBUG=1 to see the traceback"
        message = f"internal error (a bug in reconciler, please report it): {describe_bug(exc)}; {place}"
        return _error(EXIT_BUG, "bug", message, as_json)


def _error(code: int, kind: str, message: str, as_json: bool) -> int:
    if as_json:
        return _json_error(code, kind, message.removeprefix("error: ").removeprefix("reconcile: "))
    say(message, err=True)
    return code


def _json_error(code: int, kind: str, message: str, exc: SchemaError | None = None) -> int:
    doc: dict[str, Any] = {"exit": code, "kind": kind, "message": message}
    if exc is not None:
        doc["problems"] = [
            {"file": p.file, "line": p.line, "column": p.column, "field": p.field, "message": p.message}
            for p in exc.problems
        ]
        doc["message"] = f"invalid desired state: {len(exc.problems)} problem(s); nothing was changed"
    click.echo(json.dumps({"error": doc}, sort_keys=True), err=True)
    return code


def _crash_log(exc: BaseException, project_dir: Path | None) -> str | None:
    """Append the traceback to the project's ``.reconciler/crash.log`` (a temp file outside a
    project); its path as shown, or ``None`` when nothing could be written."""
    text = "".join(traceback.format_exception(exc))
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    entry = f"--- {stamp} reconcile {' '.join(sys.argv[1:])}\n{text}\n"
    candidates: list[Path] = []
    if project_dir is not None and (project_dir / "config" / "reconciler.yaml").is_file():
        candidates.append(project_dir / CRASH_LOG)
    candidates.append(Path(tempfile.gettempdir()) / f"reconciler-crash-{os.getuid()}.log")
    for path in candidates:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as f:
                f.write(entry)
        except OSError:
            continue
        return str(path)
    return None
