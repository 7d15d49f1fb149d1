"""A delayed network (issue 20): what a pass costs when every round trip costs an RTT.

    .venv/bin/python -m benchmarks.network                    # rtt=50ms,jitter=5ms,stall=0.01; 100x4, 1000x16
    .venv/bin/python -m benchmarks.network --network rtt=50ms --cells 100x4,1000x16 --passes 7
    .venv/bin/python -m benchmarks.network --quick            # CI size (20 x 2, fewer passes)

The fleet of ``benchmarks.fleet`` (H in-process asyncssh servers, N experiments: done, running,
pending) with a delaying relay in front of every server (``benchmarks.relay``: this kernel has no
netem). The relays count, per host, the TCP connections (= SSH connection setups), the bytes on
the wire both ways, and the *turns* (the client spoke, then the server answered: round trips as
the wire sees them). In this process, counters around asyncssh count the SSH channel opens, the
connection setups and the remote commands. Rows:

- ``ours, watch``: ``reconciler.watch.watch`` itself in this process (poll interval 0.5 s),
  stopped by SIGTERM after ``--passes`` passes: its first pass sets the connections up, the next
  ones are the idle passes of a long-lived watcher (connections kept, issue 20);
- ``ours, watch before issue 20``: the same idle pass as watch mode ran it before: the
  connections set up and closed by every pass, a command's stdin sent after the exec request;
- ``ours, --once (cron)``: ``python -m reconciler -C <project> --once`` as a fresh process (with
  the counters installed: ``python -m benchmarks.netcount once``), wall time from outside;
- the naive poller (``benchmarks.naive``) over the same relays: ``seed`` (the OpenSSH client, a new
  connection per running experiment) and ``per host`` (one kept connection per host).

Then the cost of each kind of round trip on one host (connection setup, a command, a command
whose stdin goes after the exec request, SFTP), and the commit -> launch latency of a real watcher
process through a relay (``benchmarks.watchlat``). Writes ``<out>/<date>-<label>-network.md`` and
``.json`` (default ``benchmarks/results/``) and prints the markdown; progress on stderr. Exit
status 1 when a goal is missed: an idle watch pass with a connection setup, or more than one
channel open or command per host (2 round trips: open the channel, exec), a ``--once`` pass with
more than 1 connection setup or 1 command per host, or a commit -> launch over 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: benchmarks/network.py
    sys.path.insert(0, str(ROOT))

from benchmarks.fleet import GIT_ENV, Fleet, Split  # noqa: E402
from benchmarks.measure import one_pass  # noqa: E402
from benchmarks.naive import naive_poll, ssh_argv  # noqa: E402
from benchmarks.netcount import COUNTS, Counts, counting  # noqa: E402
from benchmarks.planning import median  # noqa: E402
from benchmarks.realsshd import Sshd  # noqa: E402
from benchmarks.relay import Network, Relays, delta  # noqa: E402
from benchmarks.run import label_default, parse_cells, progress  # noqa: E402
from benchmarks.watchlat import watch_latency  # noqa: E402
from reconciler.model.config import SshOptions  # noqa: E402

DEFAULT_NETWORK = "rtt=50ms,jitter=5ms,stall=0.01"
POLL_INTERVAL = 0.5
MAX_SETTLE = 6
MODES: dict[str, dict[str, Any]] = {
    "quick": {
        "cells": [(20, 2)],
        "passes": 3,
        "once_runs": 2,
        "naive_max": 12,
        "watch_rounds": 2,
        "costs": 2,
        "timed": 1,
    },
    "default": {
        "cells": [(100, 4), (1000, 16)],
        "passes": 6,
        "once_runs": 3,
        "naive_max": 40,
        "watch_rounds": 5,
        "costs": 5,
        "timed": 3,
    },
}


# --------------------------------------------------------------------------- measuring


def _cpu() -> float:
    """CPU time of this process (every thread) and of the children it reaped (git), user + system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Snapshot:
    """The clocks and counters at the start or the end of a measured pass."""

    at: float
    cpu: float
    counts: Counts
    wire: dict[str, dict[str, int]]

    @classmethod
    def before(cls, relays: Relays) -> Snapshot:
        wire = relays.stats()  # asked before the clock starts
        return cls(time.perf_counter(), _cpu(), COUNTS.copy(), wire)

    @classmethod
    def after(cls, relays: Relays) -> Snapshot:
        at, cpu, counts = time.perf_counter(), _cpu(), COUNTS.copy()
        return cls(at, cpu, counts, relays.stats())


def figures(label: str, before: Snapshot, after: Snapshot, hosts: int, **extra: Any) -> dict[str, Any]:
    """One pass's figures, per host where the goal is per host."""
    wire = delta(after.wire, before.wire)
    counts = after.counts.minus(before.counts)
    return {
        "row": label,
        "wall_s": after.at - before.at,
        "cpu_s": after.cpu - before.cpu,
        "setups_per_host": sum(w["connections"] for w in wire.values()) / hosts,
        "client_setups": counts.setups,
        "channels_per_host": counts.channels / hosts,
        "commands_per_host": counts.commands / hosts,
        "turns_per_host": sum(w["turns"] for w in wire.values()) / hosts,
        "max_turns_host": max(w["turns"] for w in wire.values()),
        "kib": sum(w["bytes_up"] + w["bytes_down"] for w in wire.values()) / 1024,
        "stalls": sum(w["stalls"] for w in wire.values()),
        **extra,
    }


# --------------------------------------------------------------------------- the rows


def watch_passes(fleet: Fleet, passes: int, cell: dict[str, Any]) -> list[dict[str, Any]]:
    """``reconciler.watch.watch`` in this process for ``passes`` passes, each measured (and its
    CPU between passes in ``cell["watch_idle"]``)."""
    from reconciler import watch as watch_mod

    relays = _relays(fleet)
    hosts = len(fleet.names)
    rows: list[dict[str, Any]] = []
    real = watch_mod.reconcile_once

    def measured(project_dir: Path, **kwargs: Any) -> Any:
        before = Snapshot.before(relays)
        result = real(project_dir, **kwargs)
        after = Snapshot.after(relays)
        label = "watch, first pass" if not rows else "watch, idle pass"
        rows.append(
            figures(
                label,
                before,
                after,
                hosts,
                committed=result.commit is not None,
                unreachable=dict(result.unreachable),
                end=after.at,
                cpu_end=after.cpu,
            )
        )
        if len(rows) == passes:
            os.kill(os.getpid(), signal.SIGTERM)  # watch's handler: stop after this pass
        return result

    watch_mod.reconcile_once = measured  # type: ignore[assignment]
    try:
        with counting():
            watch_mod.watch([fleet.project], log=lambda _m: None, max_passes=50 * passes)
    finally:
        watch_mod.reconcile_once = real
    cell["watch_idle"] = idle_cpu(rows)
    return rows


def idle_cpu(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The watcher's CPU between its passes (waiting for the poll interval or a commit)."""
    if len(rows) < 2:
        return {}
    elapsed = rows[-1]["end"] - rows[0]["end"]
    cpu = rows[-1]["cpu_end"] - rows[0]["cpu_end"]
    busy = sum(r["wall_s"] for r in rows[1:])
    busy_cpu = sum(r["cpu_s"] for r in rows[1:])
    return {"idle_s": elapsed - busy, "idle_cpu_s": cpu - busy_cpu}


def per_pass_connections(fleet: Fleet, passes: int) -> list[dict[str, Any]]:
    """Idle passes as watch mode ran them before issue 20: every pass sets its connections up and
    closes them, and a command's stdin goes on the channel after the exec request."""
    from reconciler.backends import ssh

    relays = _relays(fleet)
    rows = []
    inline, ssh.INLINE_STDIN_MAX = ssh.INLINE_STDIN_MAX, -1
    try:
        with counting():
            for _ in range(passes):
                before = Snapshot.before(relays)
                p = one_pass(fleet.project, "idle", lambda: 0.0)
                rows.append(
                    figures("watch before issue 20", before, Snapshot.after(relays), len(fleet.names), **_of(p))
                )
    finally:
        ssh.INLINE_STDIN_MAX = inline
    return rows


def once_passes(fleet: Fleet, runs: int, scratch: Path) -> list[dict[str, Any]]:
    """``reconcile --once`` as cron runs it: a fresh process per pass, timed from outside."""
    relays = _relays(fleet)
    rows = []
    env = {**os.environ, **GIT_ENV}
    for i in range(runs):
        out = scratch / f"once-{i}.json"
        before = Snapshot.before(relays)
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.netcount", "once", str(fleet.project), str(out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        after = Snapshot.after(relays)
        if done.returncode != 0:
            raise RuntimeError(f"reconcile --once exited {done.returncode}: {done.stderr[-1500:]}")
        child = json.loads(out.read_text())
        after.counts = before.counts.plus(Counts(child["setups"], child["channels"], child["commands"]))
        rows.append(figures("--once (cron)", before, after, len(fleet.names)))  # CPU: the reaped process
    return rows


def naive_rows(fleet: Fleet, naive_max: int) -> list[dict[str, Any]]:
    relays = _relays(fleet)
    options = {name: fleet.ssh.options(name) for name in fleet.ssh.names}
    rows = []
    for variant in ("seed", "per_host"):
        before = Snapshot.before(relays)
        with counting():  # ``seed`` sampled (a new connection per run: every figure scales with
            # the runs polled); ``per_host`` polls every run on one connection per host
            nv = naive_poll(options, fleet.running, variant, naive_max if variant == "seed" else 10**9)
        after = Snapshot.after(relays)
        row = figures(f"naive `{variant}`", before, after, len(fleet.names))
        scale = nv["running"] / max(1, nv["polled"])  # per poll of every running experiment
        for key in ("setups_per_host", "channels_per_host", "turns_per_host", "kib", "cpu_s"):
            row[key] *= scale
        row["wall_s"] = nv["wall_s"]
        row["commands_per_host"] = nv["commands"] / len(fleet.names)
        row["client"] = nv["client"]
        row["polled"] = f"{nv['polled']} of {nv['running']}"
        if nv["client"].startswith("OpenSSH"):  # a process per command: its channel is not ours to count
            row["channels_per_host"] = row["commands_per_host"]
        rows.append(row)
    return rows


def round_trip_costs(
    relays: Relays, name: str, options: SshOptions, remote: str, repeats: int, scratch: Path, *, timed: bool = True
) -> list[dict[str, Any]]:
    """What each kind of exchange costs on one host: turns (round trips on the wire), time, bytes;
    with ``timed``, also the round trips it waited for: each exchange again at RTT 0 and at the
    RTT without jitter or stalls, (time at RTT - time at 0) / RTT."""
    from reconciler.backends import ssh

    small = scratch / "small.bin"
    small.write_bytes(b"x" * 1000)
    samples: dict[str, dict[str, list[tuple[float, int, int]]]] = {}

    def record(kind: str, step: str, before: dict[str, dict[str, int]], t0: float) -> None:
        wire = delta(relays.stats(), before)[name]
        sample = (time.perf_counter() - t0, wire["turns"], wire["bytes_up"] + wire["bytes_down"])
        samples.setdefault(kind, {}).setdefault(step, []).append(sample)

    async def one_round(kind: str) -> None:
        before, t0 = relays.stats(), time.perf_counter()
        transport = await ssh.SshTransport.open(options, name=name)
        record(kind, "connection setup (TCP, key exchange, public-key authentication)", before, t0)
        try:
            for step, script, stdin in (
                ("a command, no stdin (channel open, exec)", "true", None),
                ("a command, 200 B of stdin folded into the exec request", "cat", b"r" * 200),
                ("a command, 200 B of stdin sent after the exec (before issue 20)", "cat", b"r" * 200),
                ("a command, 40 KiB of stdin (over the inline limit: sent after the exec)", "cat", b"r" * 40960),
            ):
                inline = ssh.INLINE_STDIN_MAX
                if "(before issue 20)" in step:
                    ssh.INLINE_STDIN_MAX = -1
                try:
                    before, t0 = relays.stats(), time.perf_counter()
                    await transport.run(script, stdin=stdin)
                    record(kind, step, before, t0)
                finally:
                    ssh.INLINE_STDIN_MAX = inline
            for step in (
                "SFTP put of 1 KB, first (starts the SFTP channel)",
                "SFTP put of 1 KB, next (open, write, close)",
            ):
                before, t0 = relays.stats(), time.perf_counter()
                await transport.put(small, remote)
                record(kind, step, before, t0)
        finally:
            await transport.close()
        if shutil.which("ssh"):
            before, t0 = relays.stats(), time.perf_counter()
            done = subprocess.run([*ssh_argv(options), "true"], capture_output=True, timeout=60, check=False)
            if done.returncode == 0:
                record(kind, "OpenSSH client, `ssh host true` (a new process: setup and command)", before, t0)

    shape = relays.network
    for _ in range(repeats):
        asyncio.run(one_round("as configured"))
        if timed:
            for kind, clean in (("rtt 0", Network(rtt=0.0)), ("rtt clean", Network(rtt=shape.rtt))):
                relays.set_network(clean)
                try:
                    asyncio.run(one_round(kind))
                finally:
                    relays.set_network(shape)
    rows = []
    for step, got in samples["as configured"].items():
        row = {
            "step": step,
            "turns": median([float(t) for _, t, _ in got]),
            "ms": median([s * 1e3 for s, _, _ in got]),
            "bytes": median([float(b) for _, _, b in got]),
        }
        if timed and shape.rtt > 0 and step in samples.get("rtt 0", {}) and step in samples.get("rtt clean", {}):
            at_0 = median([s for s, _, _ in samples["rtt 0"][step]])
            at_rtt = median([s for s, _, _ in samples["rtt clean"][step]])
            row["waited"] = (at_rtt - at_0) / shape.rtt
        rows.append(row)
    return rows


def waited_round_trips(relays: Relays, one: Callable[[], Any], repeats: int) -> float | None:
    """Round trips a pass waited for: ``one()`` alternately at RTT 0 and at the configured RTT
    without jitter or stalls; (median time at RTT - median time at 0) / RTT."""
    shape = relays.network
    if shape.rtt <= 0:
        return None
    times: dict[float, list[float]] = {0.0: [], shape.rtt: []}
    try:
        for _ in range(repeats):
            for rtt, spent in times.items():
                relays.set_network(Network(rtt=rtt))
                t0 = time.perf_counter()
                one()
                spent.append(time.perf_counter() - t0)
    finally:
        relays.set_network(shape)
    return (median(times[shape.rtt]) - median(times[0.0])) / shape.rtt


def sshd_costs(fleet: Fleet, network: Network, repeats: int, scratch: Path) -> dict[str, Any]:
    """The same exchanges against a real OpenSSH sshd behind its own relay (root only)."""
    why = Sshd.unavailable()
    if why is not None:
        return {"skipped": why}
    sshd = Sshd(scratch / "sshd", fleet.ssh.scratch / "keys" / "authorized_keys").start()
    relays = Relays(network, {"sshd": ("127.0.0.1", sshd.port)}).start()
    try:
        known = scratch / "sshd_known_hosts"
        known.write_text(f"[127.0.0.1]:{relays.ports['sshd']} {sshd.public_key}\n")
        options = dataclasses.replace(
            fleet.ssh.options(fleet.names[0]), port=relays.ports["sshd"], known_hosts=str(known)
        )
        remote = str(scratch / "sshd-rtt-probe.bin")
        return {"costs": round_trip_costs(relays, "sshd", options, remote, repeats, scratch)}
    finally:
        relays.stop()
        sshd.stop()


def timed_passes(fleet: Fleet, repeats: int) -> dict[str, float | None]:
    """Round trips each kind of pass waited for (``waited_round_trips``): an idle pass on kept
    connections (as ``watch`` runs it), a pass as watch mode ran one before issue 20, and
    ``reconcile --once`` as a fresh process."""
    from reconciler.backends import ssh
    from reconciler.engine import reconcile_once
    from reconciler.targets import KeptConnections

    relays = _relays(fleet)
    project = fleet.project

    def quiet(_message: str) -> None:
        return None

    out: dict[str, float | None] = {}
    kept = KeptConnections()
    try:
        reconcile_once(project, log=quiet, kept=kept)  # the connections, set up once
        out["watch, idle pass"] = waited_round_trips(
            relays, lambda: reconcile_once(project, log=quiet, kept=kept), repeats
        )
    finally:
        kept.close()
    inline, ssh.INLINE_STDIN_MAX = ssh.INLINE_STDIN_MAX, -1
    try:
        out["watch before issue 20"] = waited_round_trips(relays, lambda: reconcile_once(project, log=quiet), repeats)
    finally:
        ssh.INLINE_STDIN_MAX = inline
    once = [sys.executable, "-m", "reconciler", "-C", str(project), "--once"]
    out["--once (cron)"] = waited_round_trips(
        relays, lambda: subprocess.run(once, cwd=ROOT, capture_output=True, timeout=600, check=True), repeats
    )
    return out


def _relays(fleet: Fleet) -> Relays:
    assert fleet.ssh.relays is not None
    return fleet.ssh.relays


def _of(p: dict[str, Any]) -> dict[str, Any]:
    return {"committed": p["committed"], "unreachable": p["unreachable"]}


# --------------------------------------------------------------------------- a cell


def run_cell(n: int, hosts: int, network: Network, opts: dict[str, Any], python: str) -> dict[str, Any]:
    cell: dict[str, Any] = {"hosts": hosts, "experiments": n, "rows": [], "setup": []}
    with tempfile.TemporaryDirectory(prefix="reconciler-net-") as tmp:
        scratch = Path(tmp)
        fleet = Fleet(
            scratch,
            hosts,
            Split.of(n),
            server_procs=min(os.cpu_count() or 1, hosts),
            python=python,
            network=network,
            poll_interval=POLL_INTERVAL,
        )
        try:
            fleet.build()
            t0 = time.perf_counter()
            for upto in fleet.batches(1500):
                fleet.add(upto)
                p = one_pass(fleet.project, "adopt", fleet.ssh.cpu_seconds)
                cell["setup"].append({"pass": "adopt", "wall_s": p["wall_s"], "actions": p["io_actions"]})
                progress(f"  adopt pass ({upto} experiments) {p['wall_s']:.1f} s, {p['io_actions']} actions")
            for _ in range(MAX_SETTLE):
                p = one_pass(fleet.project, "settle", fleet.ssh.cpu_seconds)
                cell["setup"].append({"pass": "settle", "wall_s": p["wall_s"], "actions": p["io_actions"]})
                if not p["committed"] and not p["io_actions"]:
                    break
            cell["statuses"] = p["statuses"]
            cell["build_s"] = time.perf_counter() - t0
            progress(f"  built in {cell['build_s']:.0f} s: {p['statuses']}")
            name = fleet.names[0]
            remote = str(fleet.ssh.hosts[name].home / "rtt-probe.bin")
            options = fleet.ssh.options(name)
            cell["costs"] = round_trip_costs(_relays(fleet), name, options, remote, opts["costs"], scratch)
            progress("  round-trip costs: " + ", ".join(f"{c['turns']:g}" for c in cell["costs"]))
            cell["sshd"] = sshd_costs(fleet, network, opts["costs"], scratch)
            got = cell["sshd"].get("costs") or cell["sshd"].get("skipped")
            progress(f"  real sshd: {[c['turns'] for c in got] if isinstance(got, list) else got}")
            for name, rows in (
                ("watch", lambda: watch_passes(fleet, opts["passes"], cell)),
                ("before", lambda: per_pass_connections(fleet, opts["passes"] - 1)),
                ("once", lambda: once_passes(fleet, opts["once_runs"], scratch)),
                ("naive", lambda: naive_rows(fleet, opts["naive_max"])),
            ):
                got = rows()
                cell["rows"] += got
                walls = ", ".join(f"{r['wall_s']:.2f}" for r in got)
                progress(f"  {name}: {walls} s; turns/host {[round(r['turns_per_host'], 1) for r in got]}")
            cell["waited"] = timed_passes(fleet, opts["timed"])
            progress(f"  round trips waited (timed): {cell['waited']}")
        except Exception as exc:  # reported; the other cells still run
            cell["error"] = f"{type(exc).__name__}: {exc}"[:2000]
            progress(f"  FAILED: {cell['error'][:500]}")
        finally:
            fleet.close()
    return cell


def summary(cell: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per kind of pass: medians of wall, CPU, turns, bytes; max of the counts."""
    order = [
        "watch, idle pass",
        "watch, first pass",
        "--once (cron)",
        "watch before issue 20",
        "naive `seed`",
        "naive `per_host`",
    ]
    lines = []
    for label in order:
        rows = [r for r in cell["rows"] if r["row"] == label]
        if not rows:
            continue
        line: dict[str, Any] = {"row": label, "passes": len(rows)}
        for key in ("wall_s", "cpu_s", "turns_per_host", "kib", "setups_per_host", "channels_per_host"):
            line[key] = median([float(r[key]) for r in rows])
        line["wall_max_s"] = max(r["wall_s"] for r in rows)
        line["commands_per_host"] = max(r["commands_per_host"] for r in rows)
        line["max_channels_per_host"] = max(r["channels_per_host"] for r in rows)
        line["max_setups_per_host"] = max(r["setups_per_host"] for r in rows)
        line["max_turns_host"] = max(r["max_turns_host"] for r in rows)
        line["unreachable"] = sum(bool(r.get("unreachable")) for r in rows)
        line["waited"] = (cell.get("waited") or {}).get(label)
        line["committed"] = sum(bool(r.get("committed")) for r in rows)
        lines.append(line)
    return lines


def checks(results: dict[str, Any]) -> list[str]:
    out = []
    for cell in results["cells"]:
        where = f"H={cell['hosts']} N={cell['experiments']}"
        if "error" in cell:
            out.append(f"FAIL {where}: {cell['error'][:300]}")
            continue
        lines = {line["row"]: line for line in cell["summary"]}
        idle = lines.get("watch, idle pass")
        if idle is None:
            out.append(f"FAIL {where}: no idle watch pass measured")
        else:  # the goal, 2 round trips per host: one channel open and one command, no setup
            if idle["max_setups_per_host"] > 0:
                out.append(f"FAIL {where}: an idle watch pass set a connection up")
            if idle["max_channels_per_host"] > 1 or idle["commands_per_host"] > 1:
                out.append(f"FAIL {where}: an idle watch pass opened more than 1 channel or ran more than 1 command")
            if idle["unreachable"] or idle["committed"]:
                out.append(f"FAIL {where}: an idle watch pass lost a target or committed")
        once = lines.get("--once (cron)")
        if once is not None and (once["max_setups_per_host"] > 1 or once["commands_per_host"] > 1):
            out.append(f"FAIL {where}: --once took more than 1 setup or 1 command per host")
    watch = results.get("watch") or {}
    if "error" in watch:
        out.append(f"FAIL watch latency: {watch['error'][:300]}")
    elif watch.get("latencies_s") and max(watch["latencies_s"]) > 2.0:
        out.append(f"FAIL watch latency: max {max(watch['latencies_s']):.2f} s > 2 s")
    return out


# --------------------------------------------------------------------------- report


def _f(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def _n(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"# A delayed network: {meta['date']}, {meta['label']}",
        "",
        f"Network: {meta['network']} (a user-space relay per host on loopback: `benchmarks/relay.py`; "
        f"the kernel has no netem). {meta['cpus']} CPUs, Python {meta['python']}, {meta['platform']}.",
        f"Fleet: {meta['fleet']}. {meta['note']}",
        "",
    ]
    for cell in results["cells"]:
        lines += [f"## H = {cell['hosts']} hosts, N = {cell['experiments']} experiments", ""]
        if "error" in cell:
            lines += [f"FAILED: `{cell['error'][:500]}`", ""]
            continue
        lines += [
            "| pass | passes | wall s (median) | wall s (max) | setups / host | commands / host | "
            "channel opens / host | turns / host | round trips waited | KiB on the wire | controller CPU s |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for s in cell["summary"]:
            waited = "" if s.get("waited") is None else f"{s['waited']:.1f}"
            lines.append(
                f"| {s['row']} | {s['passes']} | {_f(s['wall_s'])} | {_f(s['wall_max_s'])} | "
                f"{_n(s['setups_per_host'])} | {_n(s['commands_per_host'])} | {_n(s['channels_per_host'])} | "
                f"{_n(s['turns_per_host'])} | {waited} | {s['kib']:.0f} | {_f(s['cpu_s'])} |"
            )
        lines += [
            "",
            "Setups, commands and channel opens are counted in the controller; turns are the round "
            "trips the relay saw (an upper bound: a slow command's output after the client's end of "
            "input counts too); round trips waited = (median time at the RTT - median time at RTT 0) "
            "/ RTT, the pass repeated alternately at both without jitter or stalls.",
        ]
        idle = cell.get("watch_idle") or {}
        if idle.get("idle_s"):
            lines += [
                "",
                f"The watcher between its passes: {idle['idle_cpu_s']:.2f} CPU s over {idle['idle_s']:.1f} s "
                f"({idle['idle_cpu_s'] / idle['idle_s'] * 100:.1f} % of a core) waiting for the poll interval.",
            ]
        lines += [
            "",
            "What each exchange costs on one host (median; turns = round trips as the relay sees them; "
            "waited = timed at RTT 0 and at the RTT):",
            "",
            "| exchange | turns | round trips waited | ms | bytes on the wire |",
            "| --- | --- | --- | --- | --- |",
        ]
        for c in cell["costs"]:
            waited = f"{c['waited']:.1f}" if "waited" in c else ""
            lines.append(f"| {c['step']} | {_n(c['turns'])} | {waited} | {c['ms']:.0f} | {c['bytes']:.0f} |")
        lines.append("")
        sshd = cell.get("sshd") or {}
        if sshd.get("costs"):
            lines += [
                "The same exchanges against a real OpenSSH sshd (`/usr/sbin/sshd` on 127.0.0.1, as root, "
                "commands under the login shell) behind its own relay:",
                "",
                "| exchange | turns | round trips waited | ms | bytes on the wire |",
                "| --- | --- | --- | --- | --- |",
            ]
            for c in sshd["costs"]:
                waited = f"{c['waited']:.1f}" if "waited" in c else ""
                lines.append(f"| {c['step']} | {_n(c['turns'])} | {waited} | {c['ms']:.0f} | {c['bytes']:.0f} |")
            lines.append("")
        elif sshd.get("skipped"):
            lines += [f"No real sshd here ({sshd['skipped']}): the asyncssh servers only.", ""]
    watch = results.get("watch")
    if watch:
        lines += ["## Commit -> launch in watch mode, through the relay", ""]
        if "error" in watch:
            lines += [f"FAILED: `{watch['error'][:800]}`", ""]
        else:
            lat = watch["latencies_s"]
            lines += [
                f"A real watcher process, one target ({watch['target']}): median {median(lat):.2f} s, "
                f"max {max(lat):.2f} s over {len(lat)} commits (code shipped and environment re-checked "
                f"each time); first launch after start {watch['first_launch_s']:.2f} s; TCP connections "
                f"to the target over the whole run: {watch.get('connections', '?')}.",
                "",
            ]
    lines += ["## Checks", ""]
    lines += [f"- {c}" for c in results["checks"]] or ["- every goal checked here is met"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def _interrupt(signum: int, frame: Any) -> None:
    del signum, frame
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--network", type=Network.parse, default=Network.parse(DEFAULT_NETWORK), help=DEFAULT_NETWORK)
    ap.add_argument("--quick", action="store_true", help="CI size: 20 x 2, fewer passes")
    ap.add_argument("--cells", type=parse_cells, help="NxH list (default 100x4,1000x16)")
    ap.add_argument("--passes", type=int, help="watch passes per cell (the first sets the connections up)")
    ap.add_argument("--once-runs", type=int, help="reconcile --once processes per cell")
    ap.add_argument("--naive-max", type=int, help="poll at most this many runs per naive variant")
    ap.add_argument("--no-latency", action="store_true", help="skip the commit -> launch latency")
    ap.add_argument("--label", default=label_default(), help="machine label for the output files")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="output directory")
    parsed = ap.parse_args(args)
    opts = dict(MODES["quick" if parsed.quick else "default"])
    for key in ("cells", "passes", "once_runs", "naive_max"):
        if getattr(parsed, key):
            opts[key] = getattr(parsed, key)
    os.environ.update(GIT_ENV)
    python = os.path.realpath(sys.executable)
    network: Network = parsed.network
    now = datetime.now(timezone.utc)
    results: dict[str, Any] = {
        "meta": {
            "date": f"{now:%Y-%m-%d}",
            "time": now.isoformat(timespec="seconds"),
            "label": parsed.label,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "network": network.describe(),
            "network_settings": network.__dict__,
            "options": {k: v for k, v in opts.items() if k != "cells"},
            "fleet": (
                "H in-process asyncssh servers, each behind its relay; N experiments: 40% done, 30% running "
                "(real sleep processes), 30% pending (waiting for a slot)"
            ),
            "note": (
                "Measured on a shared 2-core machine: wall times are noisy, counts (setups, commands, "
                "channel opens, turns) are exact."
            ),
        },
        "cells": [],
    }
    parsed.out.mkdir(parents=True, exist_ok=True)
    stem = parsed.out / f"{results['meta']['date']}-{parsed.label}-network"
    signal.signal(signal.SIGTERM, _interrupt)
    t_all = time.perf_counter()
    for i, (n, h) in enumerate(opts["cells"], start=1):
        progress(f"network cell {i}/{len(opts['cells'])}: H={h} N={n}, {network.describe()}")
        cell = run_cell(n, h, network, opts, python)
        if "error" not in cell:
            cell["summary"] = summary(cell)
        results["cells"].append(cell)
        Path(f"{stem}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    signal.signal(signal.SIGTERM, _interrupt)  # watch() put its own back; keep ours
    if not parsed.no_latency:
        progress("commit -> launch latency through the relay")
        with tempfile.TemporaryDirectory(prefix="reconciler-watch-net-") as tmp:
            results["watch"] = watch_latency(Path(tmp), opts["watch_rounds"], python, network)
    results["total_s"] = time.perf_counter() - t_all
    results["checks"] = checks(results)
    text = markdown(results)
    Path(f"{stem}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    Path(f"{stem}.md").write_text(text)
    print(text)
    progress(f"wrote {stem}.md, .json ({results['total_s']:.0f} s)")
    return 1 if results["checks"] else 0


if __name__ == "__main__":
    sys.exit(main())
