"""Progress on a terminal, nothing extra when piped: the watch loop's one live line (counts by status
and the next pass) and a spinner for long commands (``export``, ``import-seed``, ``env-check``).

Everything goes to stderr and only when stderr is a terminal (and ``NO_COLOR``/``TERM=dumb`` do not
ask for plain output); otherwise the messages are printed as plain lines, as before. Text from
outside is printed through ``terminal_safe`` and as ``rich.text.Text`` (no markup is read in it).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

from reconciler.termtext import terminal_safe


def interactive() -> bool:
    """stderr is a terminal that can redraw a line."""
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


class LiveLine:
    """One line redrawn in place at the bottom of the terminal, with log lines printed above it;
    on a pipe, the log lines only."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = interactive() if enabled is None else enabled
        self._live: Any = None

    def __enter__(self) -> LiveLine:
        if self.enabled:
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            self._live = Live(Text(""), console=Console(stderr=True), transient=True, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)
            self._live = None

    def log(self, message: str) -> None:
        text = terminal_safe(message, keep_newlines=True)
        if self._live is not None:
            from rich.text import Text

            self._live.console.print(Text(text))
        else:
            print(text, file=sys.stderr, flush=True)

    def update(self, line: str) -> None:
        if self._live is not None:
            from rich.text import Text

            self._live.update(Text(terminal_safe(line), style="dim"))


def counts_line(name: str, counts: Mapping[str, int]) -> str:
    """``proj: 4 done · 2 running · 6 pending`` (statuses in a fixed order)."""
    order = ("running", "queued", "pending", "unreachable", "on_hold", "failed", "done", "cancelled")
    parts = [f"{counts[s]} {s}" for s in order if counts.get(s)]
    return f"{name}: " + (" · ".join(parts) if parts else "no experiments")


def status_counts(statuses: Iterator[str] | list[str]) -> Counter[str]:
    return Counter(statuses)


@contextlib.contextmanager
def busy(message: str) -> Iterator[None]:
    """A spinner with ``message`` on stderr while the block runs, on a terminal only."""
    if not interactive():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(terminal_safe(message)):
        yield
