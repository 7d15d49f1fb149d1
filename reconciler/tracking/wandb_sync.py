"""Sync a run's offline wandb runs from its target: a pure command builder and its output parser.

``reconciler.runtime.init_wandb`` puts a job's wandb files in its run dir, so offline runs are
``<run dir>/wandb/offline-run-*``. ``sync_command`` builds one shell command that runs
``wandb sync <dir>`` on each one not yet synced (explicit paths: no prompt, and no ``--sync-all``,
which wandb 0.30 removed) and then reports, for every dir, whether wandb's own marker
``run-<id>.wandb.synced`` exists. ``parse_sync_output`` reads that report, so the answer does not
depend on wandb's wording. Run the command after the target's environment activation (the
``wandb`` CLI lives in the job's venv/conda env); it exits 0 unless the shell itself fails.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

MARK = "@@reconciler-wandb-sync@@"
_URL = re.compile(r"https?://\S+/runs/[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class SyncReport:
    """What a sync command found: dirs synced (marker present), dirs still pending, run URLs wandb
    printed, the first non-zero exit code of a failed ``wandb sync`` (0 when the failed ones exited
    0, None when none failed) and the last lines of wandb's output."""

    synced: tuple[str, ...]
    pending: tuple[str, ...]
    urls: tuple[str, ...]
    exit_code: int | None
    tail: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Nothing left to sync (including: there was nothing to sync)."""
        return not self.pending

    @property
    def nothing(self) -> bool:
        return not self.synced and not self.pending


def sync_command(run_dir: str, *, offline_dirs: Sequence[str] = (), wandb: str = "wandb") -> str:
    """Shell text (POSIX sh): ``wandb sync`` each offline run dir not yet synced, one at a time, then
    a marker line per dir: ``@@reconciler-wandb-sync@@ synced <dir>`` or ``... pending <rc> <dir>``
    (``none`` when there is no offline run). ``offline_dirs`` defaults to
    ``<run_dir>/wandb/offline-run-*``; ``wandb`` is the command words that start the CLI
    (``wandb``, ``python -m wandb``), used as given.
    """
    q = shlex.quote
    if offline_dirs:
        select = "set -- " + " ".join(q(d) for d in offline_dirs)
    else:
        select = f"set -- {q(posixpath.join(run_dir, 'wandb'))}/offline-run-*"
    synced = 'ls "$d"/*.wandb.synced >/dev/null 2>&1'
    return f"""{select}
found=0
for d in "$@"; do
  [ -d "$d" ] || continue
  found=1
  if {synced}; then echo {MARK} synced "$d"; continue; fi
  {wandb} sync "$d" 2>&1
  rc=$?
  if {synced}; then echo {MARK} synced "$d"; else echo {MARK} pending "$rc" "$d"; fi
done
[ "$found" = 1 ] || echo {MARK} none
exit 0
"""


def parse_sync_output(text: str) -> SyncReport:
    """Read a ``sync_command`` output (stdout and stderr together)."""
    synced: list[str] = []
    pending: list[str] = []
    urls: list[str] = []
    tail: list[str] = []
    exit_code: int | None = None
    for line in text.splitlines():
        if line.startswith(MARK + " "):
            word, _, rest = line[len(MARK) + 1 :].partition(" ")
            if word == "synced":
                synced.append(rest)
            elif word == "pending":
                code, _, path = rest.partition(" ")
                pending.append(path)
                if code.lstrip("-").isdigit() and int(code) != 0:
                    exit_code = int(code)
                elif exit_code is None and code.isdigit():
                    exit_code = 0
            continue
        urls.extend(u for u in _URL.findall(line) if u not in urls)
        if line.strip():
            tail.append(line.rstrip())
    return SyncReport(tuple(synced), tuple(pending), tuple(urls), exit_code, tuple(tail[-10:]))
