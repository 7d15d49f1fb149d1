"""Errors, classified by what the loop should do with them.

Foreign exceptions (asyncssh, OSError, GitPython, yaml) are converted where they enter, with
``raise ... from exc``; no module above the adapters catches a third-party exception type.

    ReconcilerError
    ├── ConfigError            invalid desired state: exit 2, nothing touched
    │   ├── SchemaError        carries every Problem found (file, line, column, field, message)
    │   └── UnsafePathError    a write would leave the project (a symlinked component): exit 2
    ├── LockHeld               another reconcile holds the project lock: exit 75
    ├── TemporaryError         retry on a later pass
    │   ├── TransportError
    │   │   ├── ConnectError
    │   │   ├── CommandTimeout
    │   │   └── OutputTooLarge
    │   └── SchedulerBusy
    ├── PermanentError(reason) stall until the spec changes
    │   ├── SubmitRejected
    │   ├── InvalidTarget
    │   ├── RefusedFile
    │   └── RemoteFileMissing
    ├── StatusWriteError       the status files could not be written (disk full): exit 1
    └── GitStoreError
        └── PushConflict       (also a TemporaryError)
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import PurePath


@dataclass(frozen=True, order=True)
class Problem:
    """One finding of validation, printed as ``file:line:col: field: message``."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        field = self.field or "(file)"
        return f"{self.file}:{self.line}:{self.column}: {field}: {self.message}"


class ReconcilerError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(ReconcilerError):
    """The desired state is invalid; the pass stops before any network or git write."""


class SchemaError(ConfigError):
    """Validation found one or more problems; all of them are carried."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class UnsafePathError(ConfigError):
    """A write of ours would leave the project: a symlinked component (committed or swapped in),
    or a parent that is not a directory. Exit 2; nothing is written."""


class NotAProject(ConfigError):
    """The directory is no project: missing, not in a git work tree, or a repository with no
    commit yet (``reconcile`` reads only committed files). Exit 2, with what to do."""


class LockHeld(ReconcilerError):
    """Another ``reconcile`` process holds the project lock."""

    def __init__(self, path: str, holder: str) -> None:
        self.path = path
        self.holder = holder
        super().__init__(f"another reconcile holds {path}: {holder}")


class TemporaryError(ReconcilerError):
    """Not now: the action is tried again on a later pass (the poll interval paces the retries)."""


class TransportError(TemporaryError):
    """A command could not be run on a target (connection, protocol or I/O failure)."""


class ConnectError(TransportError):
    """The target did not accept a connection."""


class CommandTimeout(TransportError):
    """A command on the target did not finish within its time limit."""


class OutputTooLarge(TransportError):
    """A command's output went past its byte cap; the read was aborted and the command killed."""


class SchedulerOutputError(TransportError):
    """A scheduler printed something its adapter cannot read (the pass treats the target as not
    answering: unknown stays unknown)."""


class SchedulerBusy(TemporaryError):
    """The batch scheduler refused for now (queue limits, controller busy)."""


class LeaseRefused(TemporaryError):
    """The target's GPU leases leave no room for a launch (another controller took the GPU since
    the probe): nothing was started; the run is placed again on the next pass."""


class PermanentError(ReconcilerError):
    """Stall until the desired state changes; ``reason`` is a PascalCase word."""

    def __init__(self, message: str, reason: str = "Failed") -> None:
        self.reason = reason
        super().__init__(message)


class SubmitRejected(PermanentError):
    """The scheduler rejected the job script."""


class InvalidTarget(PermanentError):
    """A target's configuration cannot work (missing tool, bad path)."""


class RefusedFile(PermanentError):
    """A file a target offered is not copied: not a regular file (a symlink, a device) or larger
    than its cap (``policies.limits``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="RefusedFile")


class RemoteFileMissing(PermanentError):
    """A file that must be on the target is not there (a run's result file after exit 0)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="RemoteFileMissing")


class StatusWriteError(ReconcilerError):
    """The status files could not be written (disk full, read-only); nothing was committed."""


class GitStoreError(ReconcilerError):
    """Reading or writing the project's git repository failed."""


class PushConflict(GitStoreError, TemporaryError):
    """The remote moved on and the bounded fetch-rebase-push retries ran out."""


def describe_bug(exc: BaseException) -> str:
    """``Type: message (at file.py:line)``: the frame that raised it and, when that frame is not
    ours (a library's), the innermost frame of ours that called it."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        spots = [frames[-1]]
        ours = [f for f in frames if "reconciler" in PurePath(f.filename).parts]
        if ours and ours[-1] is not frames[-1]:
            spots.append(ours[-1])
        where = " (at " + ", from ".join(f"{PurePath(f.filename).name}:{f.lineno}" for f in spots) + ")"
    return f"{type(exc).__name__}: {str(exc)[:500]}{where}"
