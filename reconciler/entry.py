"""The ``reconcile`` program's first code, before the command's modules load (a few hundred ms,
longer on a loaded machine): a Ctrl-C in that window exits 130 with one line, as it does later,
not with a traceback, and is not lost when it lands inside a library's bare ``except:`` around
an optional import (the command would then run on as if no key was pressed)."""

from __future__ import annotations

import signal
import sys
from types import FrameType

EXIT_INTERRUPTED = 130  # reconciler.commands.common.EXIT_INTERRUPTED, not imported: it is heavy


def main() -> None:
    pressed: list[int] = []

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        pressed.append(signum)
        raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGINT)
    ours = previous is signal.default_int_handler  # an ignored SIGINT stays ignored
    if ours:
        signal.signal(signal.SIGINT, on_sigint)
    try:
        from reconciler.cli import main as cli_main
    except KeyboardInterrupt:
        _interrupted()
    finally:
        if ours:
            signal.signal(signal.SIGINT, previous)
    if pressed:
        _interrupted()
    cli_main()


def _interrupted() -> None:
    sys.stderr.write("interrupted\n")
    raise SystemExit(EXIT_INTERRUPTED)
