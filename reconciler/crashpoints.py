"""Crash injection for the invariant tests: ``RECONCILER_CRASH_AT=<name>`` makes the process exit
at once (``os._exit``, no cleanup, like a power cut) when the pass reaches that point.

Points are named where they are called; ``POINTS`` lists them all so a test can cover every one.
"""

from __future__ import annotations

import os

POINTS = (
    "after_lock",
    "after_load",
    "after_observe",
    "after_run_dir",
    "after_launch",
    "after_collect",
    "after_kill",
    "after_apply",
    "after_state_write",
    "before_commit",
    "after_commit",
)

BATCH_POINTS = ("after_submit",)
"""Points reached only on batch targets (between the scheduler's answer and recording its id)."""

ARCHIVE_POINTS = ("after_archive_write",)
"""Points reached only by a pass that archives a phase (its file written, the state file not yet)."""

CRASH_EXIT_CODE = 86


def crash_point(name: str) -> None:
    """Exit the process immediately if ``RECONCILER_CRASH_AT`` names this point.

    ``RECONCILER_CRASH_AT=after_launch:2`` crashes at the second time the point is reached;
    ``RECONCILER_CRASH_AT=after_load:raise`` raises ``InjectedBug`` there instead (an exception no
    boundary converts: how the CLI reports a bug of ours, exit 3, is tested with it).
    """
    spec = os.environ.get("RECONCILER_CRASH_AT")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    if nth == "raise":
        raise InjectedBug(f"injected at {name} (RECONCILER_CRASH_AT)")
    count = _hits.get(name, 0) + 1
    _hits[name] = count
    if count >= int(nth or "1"):
        os._exit(CRASH_EXIT_CODE)


class InjectedBug(RuntimeError):
    """Raised by ``crash_point`` for ``<point>:raise``: stands for a bug of ours."""


_hits: dict[str, int] = {}
