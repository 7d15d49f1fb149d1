"""Benchmarks: cost of a pass over a simulated fleet, a naive poller beside it, planning, watch latency.

    .venv/bin/python -m benchmarks.run [--quick | --full] [--cells 2000x16,10000x4] [--label NAME]

Runs as any user, without sshd and without root: the targets are in-process asyncssh servers on
127.0.0.1 (``benchmarks.sshfleet``), the fleet is a real git project whose run dirs are
pre-created on the targets (``benchmarks.fleet``: done runs with exit codes and results, running
runs backed by real ``sleep`` processes, pending runs waiting for a free slot). For every cell
(H targets, N experiments) it drives real passes in this process (``benchmarks.measure``) and a
naive poller over the same fleet (``benchmarks.naive``); then planning alone at 10,000
(``benchmarks.planning``) and the commit -> launch latency of watch mode (``benchmarks.watchlat``).

Writes ``<out>/<date>-<label>.md``, ``.json``, ``-wall.svg`` and ``-commands.svg`` (default
``benchmarks/results/``) and prints the markdown. Progress goes to stderr. Exit status 1 when a
steady pass issued other than one remote command per target, or an idle pass committed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: benchmarks/run.py
    sys.path.insert(0, str(ROOT))

from benchmarks.fleet import GIT_ENV, Fleet, Split  # noqa: E402
from benchmarks.measure import one_pass  # noqa: E402
from benchmarks.naive import naive_poll  # noqa: E402
from benchmarks.planning import median, synthetic_planning  # noqa: E402
from benchmarks.report import commands_chart, markdown, wall_chart  # noqa: E402
from benchmarks.watchlat import watch_latency  # noqa: E402

MAX_SETTLE = 6
SHARED_NOTE = (
    "Measured on this machine while other agents shared its CPU: wall times are noisy, command "
    "counts and commit checks are exact."
)
MODES: dict[str, dict[str, Any]] = {
    "quick": {
        "cells": [(n, h) for h in (1, 4) for n in (20, 100)],
        "steady": 2,
        "batch": 1500,
        "naive_max": 40,
        "planning_n": 2000,
        "planning_repeats": 2,
        "watch_rounds": 2,
    },
    "default": {
        "cells": [(n, h) for h in (1, 4, 16) for n in (100, 1000, 10000)] + [(2000, 16)],
        "steady": 3,
        "batch": 1500,
        "naive_max": 300,
        "planning_n": 10000,
        "planning_repeats": 5,
        "watch_rounds": 5,
    },
    "full": {
        "cells": [(n, h) for h in (1, 4, 16) for n in (100, 1000, 10000)] + [(2000, 16)],
        "steady": 5,
        "batch": 1500,
        "naive_max": 10**9,
        "planning_n": 10000,
        "planning_repeats": 7,
        "watch_rounds": 10,
    },
}


def progress(message: str) -> None:
    print(f"[{datetime.now(timezone.utc):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def parse_cells(text: str) -> list[tuple[int, int]]:
    """``"2000x16,100x1"`` -> ``[(2000, 16), (100, 1)]`` (N x H)."""
    cells = []
    for part in text.split(","):
        n, _, h = part.strip().lower().partition("x")
        if not (n.isdigit() and h.isdigit()) or int(n) < 1 or int(h) < 1:
            raise argparse.ArgumentTypeError(f"cell {part!r} is not NxH (e.g. 2000x16)")
        cells.append((int(n), int(h)))
    return cells


def _summary(passes: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("wall_s", "cpu_s", "cpu_children_s", "target_cpu_s", "peak_mib", "plan_ms", "observe_ms", "commit_ms")
    out: dict[str, Any] = {k: median([p[k] for p in passes]) for k in keys}
    out["commands"] = max(p["commands"] for p in passes)
    out["bytes"] = median([float(p["bytes"]) for p in passes])
    return out


def run_cell(n: int, hosts: int, opts: dict[str, Any], python: str, server_procs: int) -> dict[str, Any]:
    split = Split.of(n)
    cell: dict[str, Any] = {
        "hosts": hosts,
        "experiments": n,
        "split": {"done": split.done, "running": split.running, "pending": split.pending},
        "passes": [],
        "naive": {},
    }
    passes: list[dict[str, Any]] = cell["passes"]
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        t0 = time.perf_counter()
        fleet = Fleet(Path(tmp), hosts, split, server_procs=min(server_procs, hosts), python=python)
        try:
            fleet.build()
            for upto in fleet.batches(opts["batch"]):
                fleet.add(upto)
                passes.append(one_pass(fleet.project, "adopt", fleet.ssh.cpu_seconds))
                p = passes[-1]
                progress(f"  adopt pass ({upto} experiments) {p['wall_s']:.1f} s, {p['io_actions']} actions")
            cell["build_s"] = time.perf_counter() - t0
            for _ in range(MAX_SETTLE):
                p = one_pass(fleet.project, "settle", fleet.ssh.cpu_seconds)
                passes.append(p)
                progress(f"  settle pass {p['wall_s']:.1f} s, {p['io_actions']} actions, commit: {p['committed']}")
                if not p["committed"] and not p["io_actions"]:
                    break
            steady = [one_pass(fleet.project, "idle", fleet.ssh.cpu_seconds) for _ in range(opts["steady"])]
            passes += steady
            walls = ", ".join(f"{p['wall_s']:.2f}" for p in steady)
            progress(f"  idle passes {walls} s, commands {[p['commands'] for p in steady]}")
            options = {name: fleet.ssh.options(name) for name in fleet.ssh.names}
            for variant in ("seed", "per_host"):
                nv = naive_poll(options, fleet.running, variant, opts["naive_max"])
                cell["naive"][variant] = nv
                progress(f"  naive {variant}: {nv['wall_s']:.1f} s ({nv['polled']} of {nv['running']} polled)")
        except Exception as exc:  # a failed cell is reported, the others still run
            cell["error"] = f"{type(exc).__name__}: {exc}"[:2000]
            progress(f"  FAILED: {cell['error'][:500]}")
            return cell
        finally:
            fleet.close()
    statuses = steady[-1]["statuses"]
    expected = {k: v for k, v in (("done", split.done), ("running", split.running), ("pending", split.pending)) if v}
    cell.update(
        {
            "steady": _summary(steady),
            "idle_commits": sum(p["committed"] for p in steady),
            "commands_per_pass_ok": all(p["commands"] == hosts for p in steady),
            "statuses_ok": statuses == expected,
            "statuses": statuses,
        }
    )
    return cell


def checks(results: dict[str, Any]) -> list[str]:
    out = []
    for c in results["cells"]:
        where = f"H={c['hosts']} N={c['experiments']}"
        if "error" in c:
            out.append(f"FAIL {where}: {c['error'][:300]}")
            continue
        if not c["commands_per_pass_ok"]:
            out.append(f"FAIL {where}: steady pass commands {c['steady']['commands']} != H")
        if c["idle_commits"]:
            out.append(f"FAIL {where}: an idle pass committed")
        if not c["statuses_ok"]:
            out.append(f"FAIL {where}: statuses after settling {c['statuses']} != {c['split']}")
    return out


def _interrupt(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    raise KeyboardInterrupt


def label_default() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", socket.gethostname())[:40] or "host"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="CI size: N in {20, 100} x H in {1, 4} (about a minute)")
    size.add_argument("--full", action="store_true", help="every cell, naive poller unsampled, more passes")
    ap.add_argument("--cells", type=parse_cells, help="override the grid: NxH list, e.g. 100x1,2000x16")
    ap.add_argument("--naive-max", type=int, help="poll at most this many runs per naive variant (scale up the rest)")
    ap.add_argument(
        "--batch",
        type=int,
        help="experiments added per desired-state commit while building (0: all at once; default 1500)",
    )
    ap.add_argument("--server-procs", type=int, default=os.cpu_count() or 1, help="asyncssh helper processes")
    ap.add_argument("--no-watch", action="store_true", help="skip the watch-mode latency")
    ap.add_argument("--no-planning", action="store_true", help="skip planning alone at 10,000")
    ap.add_argument("--label", default=label_default(), help="machine label for the output files")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="output directory")
    args = ap.parse_args(argv)
    mode = "quick" if args.quick else "full" if args.full else "default"
    opts = dict(MODES[mode])
    if args.cells:
        opts["cells"] = args.cells
    if args.naive_max:
        opts["naive_max"] = args.naive_max
    if args.batch is not None:
        opts["batch"] = args.batch
    os.environ.update(GIT_ENV)
    python = os.path.realpath(sys.executable)
    now = datetime.now(timezone.utc)
    results: dict[str, Any] = {
        "meta": {
            "date": f"{now:%Y-%m-%d}",
            "time": now.isoformat(timespec="seconds"),
            "label": args.label,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "mode": mode,
            "steady_passes": opts["steady"],
            "batch": opts["batch"],
            "naive_max_commands": opts["naive_max"],
            "note": SHARED_NOTE,
            "targets": (
                f"in-process asyncssh servers on 127.0.0.1, one per target, in "
                f"{args.server_procs} helper process(es); the probe runs with {python}"
            ),
            "fleet": (
                "40% done (pre-created run dirs with exit code 0 and result CSV), 30% running "
                "(run dirs of real sleep processes), 30% pending (waiting for a slot: max_runs = "
                "the target's running count); committed in batches, each adopted by a pass"
            ),
        },
        "cells": [],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{results['meta']['date']}-{args.label}"
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: every started process is killed
    t_all = time.perf_counter()
    for i, (n, h) in enumerate(opts["cells"], start=1):
        progress(f"cell {i}/{len(opts['cells'])}: H={h} N={n}")
        results["cells"].append(run_cell(n, h, opts, python, args.server_procs))
        Path(f"{stem}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")  # partial
    if not args.no_planning:
        progress(f"planning alone, {opts['planning_n']} experiments")
        results["planning"] = synthetic_planning(opts["planning_n"], 4, opts["planning_repeats"])
    if not args.no_watch:
        progress("watch-mode latency")
        with tempfile.TemporaryDirectory(prefix="reconciler-watch-") as tmp:
            results["watch"] = watch_latency(Path(tmp), opts["watch_rounds"], python)
    results["total_s"] = time.perf_counter() - t_all
    results["checks"] = checks(results)
    text = markdown(results)
    Path(f"{stem}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    Path(f"{stem}.md").write_text(text)
    Path(f"{stem}-wall.svg").write_text(wall_chart(results))
    Path(f"{stem}-commands.svg").write_text(commands_chart(results))
    print(text)
    progress(f"wrote {stem}.md, .json, -wall.svg, -commands.svg ({results['total_s']:.0f} s)")
    return 1 if results["checks"] else 0


if __name__ == "__main__":
    sys.exit(main())
