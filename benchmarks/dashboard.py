"""The dashboard's first paint at N experiments (issue 20): before, the page loaded
``/api/snapshot`` (46 MB, 117 s at 100,000); now the summary, the view's own document and one page
of rows (``/api/experiments?offset=0&limit=100``).

The project is ``benchmarks.interactive.build`` (N/100 sweeps x 100 seeds, 55 % done, 5 % failed,
10 % running, 30 % pending). The server is ``reconcile dashboard -C project --port 0`` in its own
process, as a person starts it. Measured:

- **cold**: from the moment the server listens (its snapshot not built yet) to having every
  answer the page's first render needs: the HTML, its CSS and JS, ``/api/summary``, the default
  view's ``/api/tables`` and the experiments view's first page (the JS's requests side by side);
- **warm**: the same requests again (the snapshot and its index built), the median of ``--runs``;
- the bytes of those answers, and ``/api/snapshot`` (still served to older clients) warm;
- in headless Chromium (``tests/dashboard/cdp.py``, when installed): the page opened on
  ``#/experiments`` right after a fresh server starts (cold) and again (warm), until its rows
  are drawn (the page's ``reconcile:rows`` performance mark) and its first contentful paint.

    .venv/bin/python -m benchmarks.dashboard              # N = 100,000 (building it: ~20 s)
    .venv/bin/python -m benchmarks.dashboard --n 2000 --runs 3

Goal at 100,000 (issue 20): first paint <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.interactive import build

GOAL = 2.0
STATIC = ("", "static/style.css", "static/app.js")
API = ("api/summary", "api/tables", "api/experiments?sort=id&offset=0&limit=100")
"""What the page asks for first (``app.js``: ``refresh``), for ``#/tables`` and ``#/experiments``."""
MORE = {
    "next page": "api/experiments?sort=id&offset=100&limit=100",
    "filter + search + sort": "api/experiments?status=failed&q=oom&sort=-started&offset=0&limit=100",
    "one experiment": "api/experiments/sweep000_s7",
}


@contextmanager
def server(project: Path) -> Iterator[tuple[str, float]]:
    """``reconcile dashboard`` on a free loopback port; its URL and when it began listening."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "dashboard", "-C", str(project), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        listening = time.perf_counter()
        if " at http" not in line:
            raise SystemExit(f"the dashboard did not start: {line!r}")
        yield line.rsplit(" at ", 1)[1].strip(), listening
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=600) as res:
        body: bytes = res.read()
        return body


def first_paint(base: str) -> tuple[float, int]:
    """Seconds and bytes for the page and what its first render asks for (the HTML first, then
    the CSS and JS, then the API requests side by side, as the browser sends them)."""
    start = time.perf_counter()
    size = len(get(base))
    with ThreadPoolExecutor(max_workers=len(API)) as pool:
        size += sum(len(b) for b in pool.map(get, [base + s for s in STATIC[1:]]))
        size += sum(len(b) for b in pool.map(get, [base + a for a in API]))
    return time.perf_counter() - start, size


def timed(url: str, runs: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        size = len(get(url))
        times.append(time.perf_counter() - start)
    return statistics.median(times), size


def browser_paint(project: Path) -> dict[str, float] | None:
    """Chromium on ``#/experiments`` of a fresh server: cold (from listening) and warm (reloaded)."""
    try:
        from tests.dashboard.cdp import Browser, chromium_path
    except ImportError:
        return None
    executable = chromium_path()
    if executable is None:
        return None
    browser = Browser(executable)
    marks = "(n => (performance.getEntriesByName(n)[0] || {}).startTime)"
    try:
        with server(project) as (base, listening):
            browser.goto(f"{base}#/experiments")
            browser.wait_for(f"{marks}('reconcile:rows')", timeout=600, step=0.02)
            cold = time.perf_counter() - listening
            out = {"cold rows visible (s since listening)": cold}
            out["cold first contentful paint (ms)"] = browser.evaluate(f"{marks}('first-contentful-paint')")
            browser.goto("about:blank")  # (the same URL again would only move to its fragment)
            browser.goto(f"{base}#/experiments")
            out["warm rows visible (ms since navigation)"] = browser.wait_for(f"{marks}('reconcile:rows')", step=0.02)
            out["warm first contentful paint (ms)"] = browser.evaluate(f"{marks}('first-contentful-paint')")
            return out
    finally:
        browser.close()


def measure(project: Path, runs: int, with_browser: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with server(project) as (base, listening):
        cold, size = first_paint(base)
        figures["cold first paint (s since listening)"] = round(time.perf_counter() - listening, 3)
        figures["cold first paint (s of requests)"] = round(cold, 3)
        figures["first paint bytes"] = size
        warm = [first_paint(base)[0] for _ in range(runs)]
        figures["warm first paint (s)"] = round(statistics.median(warm), 4)
        first = json.loads(get(base + "api/experiments?offset=0&limit=1"))["items"]
        more = dict(MORE, **({"one experiment": f"api/experiments/{first[0]['id']}"} if first else {}))
        for name, path in more.items():
            secs, nbytes = timed(base + path, runs)
            figures[f"{name} (s)"] = round(secs, 4)
            figures[f"{name} bytes"] = nbytes
        secs, nbytes = timed(base + "api/snapshot", 1)
        figures["/api/snapshot, warm (s)"] = round(secs, 3)
        figures["/api/snapshot bytes"] = nbytes
    if with_browser:
        found = browser_paint(project)
        if found:
            figures.update({f"browser: {k}": round(v, 3) for k, v in found.items()})
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true", help="skip the headless Chromium figures")
    parser.add_argument("--json", dest="as_json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--project", type=Path, help="measure this project instead (e.g. one benchmarks.scale left with --keep)"
    )
    args = parser.parse_args(argv)
    if args.project is not None:
        figures = measure(args.project.resolve(), args.runs, not args.no_browser)
        args.n = 0
    else:
        with tempfile.TemporaryDirectory(prefix="reconciler-dashboard-") as scratch:
            start = time.perf_counter()
            project = build(Path(scratch), args.n)
            print(f"built {args.n:,} experiments in {time.perf_counter() - start:.1f} s", file=sys.stderr)
            figures = measure(project, args.runs, not args.no_browser)
    if args.as_json:
        print(json.dumps({"n": args.n, "figures": figures, "goal_s": GOAL}, indent=2))
    else:
        print(f"| dashboard (N = {args.n:,}) | value |")
        print("| --- | --- |")
        for name, value in figures.items():
            print(f"| {name} | {value:,} |" if isinstance(value, int) else f"| {name} | {value} |")
    return 0 if figures["warm first paint (s)"] <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
