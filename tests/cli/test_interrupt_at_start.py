"""A Ctrl-C while ``reconcile`` loads its modules exits 130 with one line, never a traceback, and
is not lost when a library's bare ``except:`` swallows the KeyboardInterrupt (a real process, a
real SIGINT, delivered while ``reconciler.cli`` is being imported)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_exit_codes import ctrl_c_as_on_a_terminal

REPO = Path(__file__).resolve().parents[2]

PROGRAM = """
import builtins, os, signal, sys, time
real_import = builtins.__import__
def importing(name, *args, **kwargs):
    if name == "reconciler.cli" and not getattr(importing, "done", False):
        importing.done = True
        if {swallow}:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)
            except:  # a library's optional import
                pass
        else:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
    return real_import(name, *args, **kwargs)
builtins.__import__ = importing
sys.argv = ["reconcile", "status", "-C", {project!r}]
from reconciler.entry import main
main()
"""


@pytest.mark.parametrize("swallow", [False, True], ids=["raised", "swallowed-by-a-bare-except"])
def test_ctrl_c_while_loading_exits_130(swallow: bool, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM.format(swallow=swallow, project=str(tmp_path))],
        cwd=REPO, capture_output=True, text=True, timeout=60, preexec_fn=ctrl_c_as_on_a_terminal,
    )  # fmt: skip
    assert done.returncode == 130, done.stderr
    assert done.stderr == "interrupted\n"
    assert done.stdout == ""  # the command itself never ran


def test_an_ignored_ctrl_c_stays_ignored(tmp_path: Path) -> None:
    """Started with SIGINT ignored (``nohup cmd &`` from a script), ``reconcile`` keeps it so."""
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM.format(swallow=False, project=str(tmp_path))],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    assert done.returncode == 2 and "not inside a git repository" in done.stderr  # it ran on
