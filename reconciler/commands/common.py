"""What every command shares: the project-dir option, and turning errors into exit codes."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler.commands.display import say
from reconciler.errors import ConfigError, LockHeld, ReconcilerError, SchemaError, describe_bug

EXIT_OK = 0
EXIT_STALLED = 1
EXIT_INVALID = 2
EXIT_LOCKED = 75
EXIT_BUG = 70
"""EX_SOFTWARE: an exception no boundary converted (a bug of ours, whatever the input)."""
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


def project_option(f: F) -> F:
    return click.option(
        "-C",
        "--project",
        "project_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("."),
        show_default=True,
        help="The research project's directory.",
    )(f)


def exit_codes(f: Callable[..., int]) -> Callable[..., None]:
    """Run a command body that returns an exit code; map our errors to codes and messages."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        sys.exit(run_guarded(lambda: f(*args, **kwargs)))

    return wrapper


def run_guarded(body: Callable[[], int]) -> int:
    try:
        return body()
    except SchemaError as exc:
        for problem in exc.problems:
            say(str(problem), err=True)
        click.echo(f"invalid desired state: {len(exc.problems)} problem(s); nothing was changed", err=True)
        return EXIT_INVALID
    except ConfigError as exc:
        say(f"error: {exc}", err=True)
        return EXIT_INVALID
    except LockHeld as exc:
        say(f"reconcile: {exc}", err=True)
        return EXIT_LOCKED
    except ReconcilerError as exc:
        say(f"error: {exc}", err=True)
        return EXIT_STALLED
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except OSError as exc:  # the controller's own disk or permissions, outside any boundary
        say(f"error: {exc}", err=True)
        return EXIT_STALLED
    except Exception as exc:  # no input ends in a traceback; the bug is named, and reported
        if os.environ.get("RECONCILER_DEBUG"):
            raise
        say(f"internal error (a bug in reconciler, please report it): {describe_bug(exc)}", err=True)
        say("nothing further was done; set RECONCILER_DEBUG=1 to see the traceback", err=True)
        return EXIT_BUG
