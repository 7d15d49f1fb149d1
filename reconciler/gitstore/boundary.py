"""Where GitPython meets the rest of the package: every git call and every GitPython exception
passes through here and leaves as ``GitStoreError`` (``raise ... from``), so no module above
``gitstore`` ever sees a foreign exception type.

Commands run through GitPython's ``Git.execute`` with exceptions off, so that a failure carries
git's own stderr (not GitPython's wrapped rendering) in the message.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import git
from git.exc import GitError, ODBError

from reconciler.errors import GitStoreError

NETWORK_TIMEOUT = 120.0
"""Seconds a fetch or push may take before it is killed (a hung remote must not hang the loop)."""

NETWORK_ENV = {"GIT_TERMINAL_PROMPT": "0"}
"""Never wait for a password on a terminal that nobody watches."""

BASE_ENV = {"GIT_LITERAL_PATHSPECS": "1"}
"""Paths we pass are file names, never patterns (an id may one day hold ``*`` or ``[``)."""


@dataclass(frozen=True)
class Completed:
    """A finished git command."""

    args: tuple[str, ...]
    status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.status == 0

    def error(self, what: str) -> GitStoreError:
        detail = self.stderr.strip() or self.stdout.strip() or f"exit status {self.status}"
        return GitStoreError(f"{what}: git {' '.join(self.args[:2])} failed: {detail}")


@contextmanager
def git_errors(what: str) -> Iterator[None]:
    """Convert GitPython, gitdb and OS errors raised inside the block into ``GitStoreError``."""
    try:
        yield
    except GitStoreError:
        raise
    except (GitError, ODBError, ValueError, OSError) as exc:
        raise GitStoreError(f"{what}: {exc}") from exc


def execute(
    handle: git.Repo,
    args: list[str],
    *,
    env: Mapping[str, str] | None = None,
    strip: bool = True,
    timeout: float | None = None,
) -> Completed:
    """Run ``git <args>`` in the work tree; never raises for a non-zero exit."""
    executable = git_executable()
    with git_errors(f"git {' '.join(args[:2])}"):
        status, out, err = handle.git.execute(
            [executable, *args],
            with_extended_output=True,
            with_exceptions=False,
            env={**BASE_ENV, **(env or {})},
            strip_newline_in_stdout=strip,
            kill_after_timeout=timeout,
        )
    return Completed(tuple(args), int(status), out, err)


def git_executable() -> str:
    """The git program GitPython runs (``GIT_PYTHON_GIT_EXECUTABLE``, else ``git`` on the PATH)."""
    return str(git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git")


def run(
    handle: git.Repo,
    args: list[str],
    *,
    what: str,
    env: Mapping[str, str] | None = None,
    strip: bool = True,
    timeout: float | None = None,
) -> str:
    """Run ``git <args>`` and return its stdout; a non-zero exit raises ``GitStoreError``."""
    done = execute(handle, args, env=env, strip=strip, timeout=timeout)
    if not done.ok:
        raise done.error(what)
    return done.stdout
