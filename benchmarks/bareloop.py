"""Against a bare batched loop on real OpenSSH (issue 20): our idle pass beside the least a
poller can do, one command per host that checks exactly that host's running pids.

    .venv/bin/python -m benchmarks.bareloop                       # N = 2,000 x 8 hosts, 7 rounds
    .venv/bin/python -m benchmarks.bareloop --n 2000 --hosts 8 --rounds 7 --rtt-ms 50
    .venv/bin/python -m benchmarks.bareloop --n 100 --hosts 2 --rounds 3 --no-write   # a quick look

Needs root and ``/usr/sbin/sshd``: one real OpenSSH sshd per target on 127.0.0.1
(``benchmarks.realsshd``, key-only, commands under root's login shell, bash), each with a home of
its own (``SetEnv HOME=<scratch>/homes/<target>``: an empty home, so the login shell reads no
``.bashrc``; ``--login-home`` keeps root's real home and its ``.bashrc``, which on this machine
runs ``pyenv init`` and costs every command, ours and the bare loop's alike, ~120 ms). With
``--rtt-ms``, a delaying relay (``benchmarks.relay``) stands in front of every sshd. The fleet is
``benchmarks.fleet``'s (40 % done, 30 % running on real ``sleep`` processes, 30 % pending),
adopted by real passes, then settled.

Then, in rounds, each side once per round in a rotating order (so that the noise of a shared
machine falls on both alike), medians over the rounds:

- ours, ``--once``: ``reconciler.engine.reconcile_once(project)`` in this process, which opens and
  closes its SSH connections (``benchmarks.measure.one_pass``);
- ours, watch: ``reconcile_once(project, kept=KeptConnections())``, the connections kept across
  passes as ``reconcile`` (watch mode) keeps them;
- bare, fresh connections: per host in parallel, one ``for p in <pids>; do kill -0 $p || echo $p;
  done`` (prints the dead ones), (a) an OpenSSH ``ssh`` client process per host, as ``pssh``
  does, (b) an asyncssh connection per host opened in this process (the product's SSH library);
- bare, kept connections: the same command on one asyncssh connection per host kept open, on a
  loop in a thread of its own (as ``KeptConnections`` keeps ours);
- the ``reconcile --once`` CLI as a fresh process (interpreter start, imports), a few times.

Then where our pass's time goes: the engine's own stage split (``.reconciler/metrics.json``:
load, observe, plan, apply, commit), cProfile of one pass of each mode (the kept mode's loop
thread profiled too), and the probe command replayed alone on the bare loop's kept connections
(the remote work of the probe, without the controller). Writes
``<out>/<date>-<label>-bareloop.md`` and ``.json`` and prints the markdown; progress on stderr.
Exit status 1 when our pass is over ``--goal`` (1.5) times the bare loop in either mode.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: benchmarks/bareloop.py
    sys.path.insert(0, str(ROOT))

from benchmarks.fleet import GIT_ENV, Fleet, Split, git  # noqa: E402
from benchmarks.measure import Instruments, one_pass  # noqa: E402
from benchmarks.naive import ssh_argv  # noqa: E402
from benchmarks.planning import median  # noqa: E402
from benchmarks.realsshd import Sshd  # noqa: E402
from benchmarks.relay import Network, Relays  # noqa: E402
from benchmarks.run import progress  # noqa: E402
from benchmarks.sshfleet import SshFleet, SshHost  # noqa: E402
from reconciler.backends.asyncssh_quiet import asyncssh  # noqa: E402
from reconciler.model.config import SshOptions  # noqa: E402

T = TypeVar("T")
MAX_SETTLE = 6
GOAL = 1.5


# --------------------------------------------------------------------------- real sshd targets


@dataclass
class RealSshFleet(SshFleet):
    """``SshFleet``'s interface over one real OpenSSH sshd per target (root only)."""

    login_home: bool = False
    """Keep root's home (and its ``.bashrc``) for the sessions instead of an empty home per target."""
    servers: dict[str, Sshd] = field(default_factory=dict)

    def start(self) -> RealSshFleet:
        keys = self.scratch / "keys"
        keys.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key_path)], check=True)
        authorized = keys / "authorized_keys"
        authorized.write_text(Path(f"{self.key_path}.pub").read_text())
        self.empty_config.write_text("")
        try:
            for name in self.names:
                home = self.scratch / "homes" / name
                home.mkdir(parents=True, exist_ok=True)
                extra = "" if self.login_home else f"SetEnv HOME={home}\n"
                sshd = Sshd(self.scratch / "sshd" / name, authorized, extra_config=extra)
                self.servers[name] = sshd.start()
                self.hosts[name] = SshHost(name, sshd.port, home)
            if self.network is not None:
                upstream = {n: ("127.0.0.1", h.port) for n, h in self.hosts.items()}
                self.relays = Relays(self.network, upstream).start()
        except BaseException:
            self.stop()
            raise
        lines = []
        for name, sshd in self.servers.items():
            ports = [sshd.port] + ([self.relays.ports[name]] if self.relays else [])
            lines += [f"[127.0.0.1]:{port} {sshd.public_key}" for port in ports]
        self.known_hosts.write_text("\n".join(lines) + "\n")
        return self

    def cpu_seconds(self) -> float:
        return 0.0  # sshd's per-connection processes are not its children to count; not measured

    def stop(self) -> None:
        if self.relays is not None:
            self.relays.stop()
            self.relays = None
        for sshd in self.servers.values():
            sshd.stop()


@dataclass
class RealFleet(Fleet):
    login_home: bool = False

    def servers(self) -> SshFleet:
        return RealSshFleet(self.scratch, self.names, network=self.network, login_home=self.login_home)


# --------------------------------------------------------------------------- the bare loop


def kill_script(pids: list[int]) -> str:
    """One host's check: every pid of its running experiments, the dead ones printed."""
    return "for p in " + " ".join(str(p) for p in pids) + "; do kill -0 $p 2>/dev/null || echo $p; done"


def _dead(out: str) -> int:
    return len(out.split())


def bare_openssh(options: dict[str, SshOptions], scripts: dict[str, str]) -> dict[str, Any]:
    """(a) an OpenSSH client process per host, all hosts at once (what ``pssh`` does)."""
    t0 = time.perf_counter()
    procs = {
        h: subprocess.Popen(
            [*ssh_argv(options[h]), scripts[h]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for h in scripts
    }
    dead = 0
    for h, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"ssh {h}: exit {proc.returncode}: {err.decode()[-300:]}")
        dead += _dead(out.decode())
    return {"wall_s": time.perf_counter() - t0, "dead": dead, "commands": len(procs)}


async def _connect(o: SshOptions) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(
        o.host,
        port=o.port,
        username=o.user,
        client_keys=[str(o.identity_file)],
        known_hosts=str(o.known_hosts),
        config=[str(o.config_file)],
    )


async def _run_checked(conn: asyncssh.SSHClientConnection, script: str) -> str:
    done = await conn.run(script, check=True)
    out = done.stdout
    return out if isinstance(out, str) else ""


def bare_asyncssh_fresh(options: dict[str, SshOptions], scripts: dict[str, str]) -> dict[str, Any]:
    """(b) an asyncssh connection per host opened, used once and closed, all hosts at once."""

    async def one(h: str) -> str:
        conn = await _connect(options[h])
        try:
            return await _run_checked(conn, scripts[h])
        finally:
            conn.close()
            await conn.wait_closed()

    async def every() -> list[str]:
        return await asyncio.gather(*(one(h) for h in scripts))

    t0 = time.perf_counter()
    outs = asyncio.run(every())
    return {"wall_s": time.perf_counter() - t0, "dead": sum(_dead(o) for o in outs), "commands": len(outs)}


class BareKept:
    """(c) one asyncssh connection per host kept open, on a loop in a thread of its own."""

    def __init__(self, options: dict[str, SshOptions]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bare-ssh", daemon=True)
        self.thread.start()
        self.conns: dict[str, asyncssh.SSHClientConnection] = {}
        self.options = options

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def open(self) -> BareKept:
        async def every() -> None:
            conns = await asyncio.gather(*(_connect(o) for o in self.options.values()))
            self.conns = dict(zip(self.options, conns, strict=True))

        self.run(every())
        return self

    def check(self, scripts: dict[str, str]) -> dict[str, Any]:
        async def every() -> list[str]:
            return await asyncio.gather(*(_run_checked(self.conns[h], s) for h, s in scripts.items()))

        t0 = time.perf_counter()
        outs = self.run(every())
        return {"wall_s": time.perf_counter() - t0, "dead": sum(_dead(o) for o in outs), "commands": len(outs)}

    def replay(self, commands: dict[str, tuple[str, bytes | None]]) -> float:
        """Each host's captured command (the probe) run alone on the kept connection, hosts at once."""

        async def one(h: str, script: str, stdin: bytes | None) -> None:
            await self.conns[h].run(script, input=stdin, encoding=None, check=True)

        async def every() -> None:
            await asyncio.gather(*(one(h, s, i) for h, (s, i) in commands.items()))

        t0 = time.perf_counter()
        self.run(every())
        return time.perf_counter() - t0

    def alone(self, host: str, script: str, stdin: bytes | None = None) -> float:
        """One command on one host's kept connection, nothing else running: its wall time."""
        t0 = time.perf_counter()
        self.run(self.conns[host].run(script, input=stdin, encoding=None, check=True))
        return time.perf_counter() - t0

    def close(self) -> None:
        async def shutdown() -> None:
            for conn in self.conns.values():
                conn.close()
            for conn in self.conns.values():
                with contextlib.suppress(Exception):
                    await conn.wait_closed()

        if self.thread.is_alive():
            with contextlib.suppress(Exception):
                self.run(shutdown())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()


# --------------------------------------------------------------------------- our passes


def _quiet(_message: str) -> None:
    return None


def _cpu() -> float:
    """CPU seconds of this process (every thread) and of its reaped children (git, ssh clients)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def last_stages(project: Path) -> dict[str, float]:
    """The engine's own stage split of the last pass (``.reconciler/metrics.json``), in ms."""
    doc = json.loads((project / ".reconciler" / "metrics.json").read_text())
    return {k: float(v) * 1e3 for k, v in doc["last"]["stages"].items()}


def ours_once(project: Path) -> dict[str, Any]:
    p = one_pass(project, "once", lambda: 0.0)
    return {**p, "stages_ms": last_stages(project)}


def ours_kept(project: Path, kept: Any) -> dict[str, Any]:
    from reconciler.engine import reconcile_once

    tools = Instruments()
    head = git(project, "rev-parse", "HEAD")
    with tools.installed():
        t0 = time.perf_counter()
        result = reconcile_once(project, pull=False, push_changes=False, log=_quiet, kept=kept)
        wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "commands": tools.runners[0].commands,
        "committed": git(project, "rev-parse", "HEAD") != head,
        "io_actions": len(result.plan.io_actions),
        "unreachable": dict(result.unreachable),
        "stages_ms": last_stages(project),
    }


def ours_cli(project: Path) -> dict[str, Any]:
    env = {**os.environ, **GIT_ENV}
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "-C", str(project), "--once"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"reconcile --once exited {done.returncode}: {done.stderr[-1500:]}")
    return {"wall_s": wall}


def cli_imports(project: Path) -> dict[str, Any]:
    """``reconcile --once`` once under ``-X importtime``: its imports in all, and the largest
    top-level ones (ms, cumulative)."""
    env = {**os.environ, **GIT_ENV}
    argv = [sys.executable, "-X", "importtime", "-m", "reconciler", "-C", str(project), "--once"]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    rows: list[tuple[int, float, str]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, raw = line.removeprefix("import time:").split("|", 2)
        rows.append((len(raw) - len(raw.lstrip()), int(cumulative) / 1e3, raw.strip()))
    if not rows:
        return {}
    top = min(depth for depth, _, _ in rows)
    first = [(ms, name) for depth, ms, name in rows if depth == top]
    largest = sorted(first, reverse=True)[:10]
    return {"total_ms": sum(ms for ms, _ in first), "largest": [{"module": n, "ms": ms} for ms, n in largest]}


def python_start() -> float:
    """The interpreter's own start with the CLI's first import: ``reconcile --version``."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reconciler", "--version"], capture_output=True, check=True)
    return time.perf_counter() - t0


@contextlib.contextmanager
def captured_commands() -> Any:
    """Every ``SshTransport.run`` of the passes inside: ``(name, script, stdin)``."""
    from reconciler.backends import ssh

    seen: list[tuple[str, str, bytes | None]] = []
    real = ssh.SshTransport.run

    async def spy(self: Any, script: str, *, stdin: bytes | None = None, **kwargs: Any) -> Any:
        seen.append((self.name, script, stdin))
        return await real(self, script, stdin=stdin, **kwargs)

    ssh.SshTransport.run = spy  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        ssh.SshTransport.run = real  # type: ignore[method-assign]


# --------------------------------------------------------------------------- profile


def probe_profile(fleet: RealFleet, commands: dict[str, tuple[str, bytes | None]]) -> str:
    """cProfile of the probe script itself on the first host, run here (the hosts are this
    machine) with the request our pass sent it: what the probe spends per host."""
    name = fleet.names[0]
    installed = sorted(Path(fleet.roots[name], ".reconciler").glob("probe-*.py"))
    _script, stdin = commands[name]
    if not installed or stdin is None:
        return "(no installed probe or no request captured)"
    argv = [os.path.realpath(sys.executable), "-S", "-m", "cProfile", "-s", "cumulative", str(installed[-1])]
    home = str(fleet.ssh.hosts[name].home)
    done = subprocess.run(
        argv, input=stdin, capture_output=True, cwd=home, env={**os.environ, "HOME": home}, timeout=60, check=True
    )
    text = done.stdout.decode(errors="replace")
    return "\n".join(text.split("\n", 1)[1].splitlines()[:30]) if text.startswith("{") else text[:4000]


def profiled(fn: Callable[[], Any], kept: Any | None) -> pstats.Stats:
    """cProfile of ``fn()`` in this thread, and of the kept loop's thread when ``kept`` is given."""
    main = cProfile.Profile()
    loop_prof = cProfile.Profile()

    async def on() -> None:
        loop_prof.enable()

    async def off() -> None:
        loop_prof.disable()

    if kept is not None:
        kept.run(on())
    main.enable()
    try:
        fn()
    finally:
        main.disable()
        if kept is not None:
            kept.run(off())
    stats = pstats.Stats(main)
    if kept is not None:
        stats.add(loop_prof)
    return stats


# What the remaining time buys: functions of one pass, by cumulative time (the first match of
# each row; ``file`` a path suffix). Nested rows are part of their parent's time.
PROFILE_ROWS: list[tuple[str, str, str]] = [
    ("the whole pass (`reconcile_once`)", "reconciler/engine.py", "reconcile_once"),
    ("lock, project open (`open_project`)", "reconciler/session.py", "open_project"),
    ("  temp-file sweep of the written dirs (`sweep_temp_files`)", "reconciler/atomic.py", "sweep_temp_files"),
    ("desired state: dispatch + config parsed, checked (`load_desired`)", "reconciler/load/desired.py", "load_desired"),
    ("uncommitted-edit check (`dirty_paths`: `git status`)", "reconciler/gitstore/repo.py", "dirty_paths"),
    ("committed state (`load_recorded`)", "reconciler/statestore.py", "load_recorded"),
    ("  JSON parse (`loads_strict`)", "reconciler/model/jsontext.py", "loads_strict"),
    ("  limits check of every value (`jsontext.within`)", "reconciler/model/jsontext.py", "within"),
    ("  entries built (`StateFile.from_dict`)", "reconciler/model/status.py", "from_dict"),
    ("probe request (`probe_request`)", "reconciler/observe/request.py", "probe_request"),
    ("probe answers parsed (`parse_probe`)", "reconciler/backends/probe.py", "parse_probe"),
    ("observations written (`write_observations`)", "reconciler/statestore.py", "write_observations"),
    ("plan (`make_plan`)", "reconciler/plan/core.py", "make_plan"),
    ("finish (`_finish`: status files, notes, owned files, commit check)", "reconciler/engine.py", "_finish"),
    ("  owned files stat'ed (`owned_files`)", "reconciler/statestore.py", "owned_files"),
    ("  commit check (`commit_status`: `git status`, nothing new)", "reconciler/gitstore/writer.py", "commit_status"),
    ("pass metrics written (`record_pass`)", "reconciler/passmetrics.py", "record_pass"),
    ("SSH connection setup (`asyncssh.connect`)", "asyncssh/connection.py", "connect"),
    ("waiting in the event loop (`epoll`: the hosts)", "~", "<method 'poll' of 'select.epoll' objects>"),
    ("waiting for the kept loop's thread (lock)", "~", "<method 'acquire' of '_thread.lock' objects>"),
]


def profile_rows(stats: pstats.Stats) -> list[dict[str, Any]]:
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    rows = []
    for label, suffix, func in PROFILE_ROWS:
        best = None
        for (path, _line, name), (_cc, nc, _tt, ct, _callers) in table.items():
            if name == func and path.endswith(suffix) and (best is None or ct > best[1]):
                best = (nc, ct)
        if best is not None:
            rows.append({"what": label, "calls": best[0], "cum_ms": best[1] * 1e3})
    return rows


def profile_text(stats: pstats.Stats, top: int = 40) -> str:
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(25)
    text = out.getvalue()
    return text.replace(str(ROOT) + "/", "").replace(sys.prefix + "/", "")


# --------------------------------------------------------------------------- the run


def run(args: argparse.Namespace) -> dict[str, Any]:
    from reconciler.targets import KeptConnections

    network = Network(rtt=args.rtt_ms / 1e3) if args.rtt_ms else None
    results: dict[str, Any] = {"rounds": [], "setup": []}
    with tempfile.TemporaryDirectory(prefix="reconciler-bare-") as tmp:
        scratch = Path(tmp)
        fleet = RealFleet(
            scratch,
            args.hosts,
            Split.of(args.n),
            python=os.path.realpath(sys.executable),
            network=network,
            login_home=args.login_home,
        )
        kept: KeptConnections | None = None
        bare: BareKept | None = None
        try:
            fleet.build()
            t0 = time.perf_counter()
            p: dict[str, Any] = {}
            for upto in fleet.batches(1500):
                fleet.add(upto)
                p = one_pass(fleet.project, "adopt", lambda: 0.0)
                results["setup"].append({"pass": "adopt", "wall_s": p["wall_s"], "actions": p["io_actions"]})
                progress(f"  adopt pass ({upto} experiments) {p['wall_s']:.1f} s, {p['io_actions']} actions")
            for _ in range(MAX_SETTLE):
                p = one_pass(fleet.project, "settle", lambda: 0.0)
                results["setup"].append({"pass": "settle", "wall_s": p["wall_s"], "actions": p["io_actions"]})
                if not p["committed"] and not p["io_actions"]:
                    break
            results["statuses"] = p["statuses"]
            results["build_s"] = time.perf_counter() - t0
            progress(f"built in {results['build_s']:.0f} s: {p['statuses']}")

            options = {name: fleet.ssh.options(name) for name in fleet.names}
            pids: dict[str, list[int]] = {name: [] for name in fleet.names}
            for target, pid, _rdir in fleet.running.values():
                pids[target].append(pid)
            scripts = {h: kill_script(sorted(v)) for h, v in pids.items()}
            results["pids_per_host"] = {h: len(v) for h, v in pids.items()}
            results["bare_script_bytes"] = max(len(s) for s in scripts.values())

            kept = KeptConnections()
            ours_kept(fleet.project, kept)  # sets the kept connections up (not measured)
            bare = BareKept(options).open()
            bare.check(scripts)  # warm, as ours

            sides: list[tuple[str, Callable[[], dict[str, Any]]]] = [
                ("ours --once (in-process)", lambda: ours_once(fleet.project)),
                ("bare, fresh: OpenSSH ssh per host", lambda: bare_openssh(options, scripts)),
                ("bare, fresh: asyncssh connect per host", lambda: bare_asyncssh_fresh(options, scripts)),
                ("ours watch (kept connections)", lambda: ours_kept(fleet.project, kept)),
                ("bare, kept: asyncssh per host", lambda: bare.check(scripts) if bare else {}),
            ]
            for r in range(args.rounds):
                shift = r % len(sides)
                for label, fn in sides[shift:] + sides[:shift]:
                    cpu0 = _cpu()
                    got = fn()
                    got["controller_cpu_s"] = _cpu() - cpu0
                    got["side"] = label
                    got["round"] = r
                    results["rounds"].append(got)
                    if got.get("committed") or got.get("unreachable") or got.get("io_actions"):
                        raise RuntimeError(f"{label}: not an idle pass: {got}")
                progress(
                    f"round {r + 1}/{args.rounds}: "
                    + ", ".join(f"{g['wall_s']:.2f}" for g in results["rounds"][-len(sides) :])
                )

            cli = []
            for _ in range(args.cli_runs):
                cli.append({**ours_cli(fleet.project), "side": "ours `reconcile --once` CLI process"})
                cli.append({**bare_openssh(options, scripts), "side": "bare, fresh: OpenSSH ssh per host"})
            results["cli"] = cli
            results["python_start_s"] = median([python_start() for _ in range(3)])
            results["cli_imports"] = cli_imports(fleet.project)

            # The probe's own remote work: the command our pass sends, replayed alone.
            with captured_commands() as seen:
                ours_kept(fleet.project, kept)
            commands = {name: (script, stdin) for name, script, stdin in seen}
            replays, kills = [], []
            for _ in range(args.rounds):
                replays.append(bare.replay(commands))
                kills.append(bare.check(scripts)["wall_s"])
            results["probe_replay_s"] = median(replays)
            results["bare_kept_beside_replay_s"] = median(kills)
            results["probe_request_bytes"] = max(len(i or b"") + len(s) for s, i in commands.values())
            python = os.path.realpath(sys.executable)
            alone: dict[str, list[float]] = {"true": [], "python": [], "probe": [], "bare": []}
            for _ in range(args.rounds):
                for h, (script, stdin) in commands.items():
                    alone["true"].append(bare.alone(h, "true"))
                    alone["python"].append(bare.alone(h, f"exec {python} -S -c pass"))
                    alone["probe"].append(bare.alone(h, script, stdin))
                    alone["bare"].append(bare.alone(h, scripts[h]))
            results["one_host_alone_ms"] = {k: median(v) * 1e3 for k, v in alone.items()}
            results["probe_profile_text"] = probe_profile(fleet, commands)
            progress(f"one host alone (ms): {results['one_host_alone_ms']}")
            progress(f"probe replayed alone: {median(replays):.3f} s; the bare check beside it {median(kills):.3f} s")

            prof_once = profiled(lambda: ours_once(fleet.project), None)
            prof_kept = profiled(lambda: ours_kept(fleet.project, kept), kept)
            results["profile_once"] = profile_rows(prof_once)
            results["profile_kept"] = profile_rows(prof_kept)
            results["profile_once_text"] = profile_text(prof_once)
            results["profile_kept_text"] = profile_text(prof_kept)
        finally:
            if bare is not None:
                bare.close()
            if kept is not None:
                kept.close()
            if hasattr(fleet, "ssh"):  # else the servers' own start cleaned up after itself
                fleet.close()
    return results


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    by: dict[str, list[dict[str, Any]]] = {}
    for row in results["rounds"]:
        by.setdefault(row["side"], []).append(row)
    out: dict[str, Any] = {}
    for side, rows in by.items():
        walls = [r["wall_s"] for r in rows]
        line: dict[str, Any] = {"median_s": median(walls), "min_s": min(walls), "max_s": max(walls), "n": len(walls)}
        line["commands"] = max(int(r.get("commands", 0)) for r in rows)
        line["controller_cpu_s"] = median([r.get("controller_cpu_s", 0.0) for r in rows])
        stages = [r["stages_ms"] for r in rows if "stages_ms" in r]
        if stages:
            line["stages_ms"] = {k: median([s.get(k, 0.0) for s in stages]) for k in stages[0]}
        out[side] = line
    cli = results.get("cli") or []
    for side in {r["side"] for r in cli}:
        walls = [r["wall_s"] for r in cli if r["side"] == side]
        line = {"median_s": median(walls), "min_s": min(walls), "max_s": max(walls), "n": len(walls)}
        out[f"{side} (CLI rounds)"] = line
    once = out["ours --once (in-process)"]["median_s"]
    watch = out["ours watch (kept connections)"]["median_s"]
    ssh_fresh = out["bare, fresh: OpenSSH ssh per host"]["median_s"]
    lib_fresh = out["bare, fresh: asyncssh connect per host"]["median_s"]
    kept = out["bare, kept: asyncssh per host"]["median_s"]
    ratios = {
        "once / bare fresh (OpenSSH ssh)": once / ssh_fresh,
        "once / bare fresh (asyncssh)": once / lib_fresh,
        "watch / bare kept (asyncssh)": watch / kept,
    }
    if cli:
        ours_cli_s = out["ours `reconcile --once` CLI process (CLI rounds)"]["median_s"]
        bare_cli_s = out["bare, fresh: OpenSSH ssh per host (CLI rounds)"]["median_s"]
        ratios["CLI process / bare fresh (OpenSSH ssh)"] = ours_cli_s / bare_cli_s
    return {"sides": out, "ratios": ratios}


# --------------------------------------------------------------------------- report


def markdown(results: dict[str, Any]) -> str:
    meta, summ = results["meta"], results["summary"]
    lines = [
        f"# Against a bare batched loop on real OpenSSH: {meta['date']}, {meta['label']}",
        "",
        f"N = {meta['n']} experiments x H = {meta['hosts']} hosts, one real OpenSSH sshd per host on 127.0.0.1 "
        f"({meta['shell']}); network: {meta['network']}. {meta['cpus']} CPUs, Python {meta['python']}, "
        f"{meta['platform']}. Fleet: {results['statuses']}, running pids per host "
        f"{sorted(set(results['pids_per_host'].values()))}. {meta['note']}",
        "",
        f"Rounds: {meta['rounds']}, each side once per round in a rotating order; median (min - max) s.",
        "",
        "| side | median s | min s | max s | passes | remote commands | controller CPU s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for side, s in summ["sides"].items():
        cpu = f"{s['controller_cpu_s']:.3f}" if "controller_cpu_s" in s else ""
        lines.append(
            f"| {side} | {s['median_s']:.3f} | {s['min_s']:.3f} | {s['max_s']:.3f} | {s['n']} | "
            f"{s.get('commands', '')} | {cpu} |"
        )
    lines += [
        "",
        "Controller CPU: this process (every thread) and its reaped children (git, `ssh` clients), "
        "during the pass; the sshd side and the commands it ran are not in it.",
    ]
    lines += ["", "| ratio | value | within 1.5x |", "| --- | --- | --- |"]
    for name, value in summ["ratios"].items():
        lines.append(f"| {name} | {value:.2f}x | {'yes' if value <= GOAL else 'no'} |")
    lines += ["", "Our passes' own stage split (engine `Stopwatch`, `.reconciler/metrics.json`, median ms):", ""]
    lines += ["| mode | " + " | ".join(STAGES) + " |", "| --- |" + " --- |" * len(STAGES)]
    for side in ("ours --once (in-process)", "ours watch (kept connections)"):
        st = summ["sides"][side].get("stages_ms", {})
        lines.append(f"| {side} | " + " | ".join(f"{st.get(k, 0.0):.0f}" for k in STAGES) + " |")
    lines += [
        "",
        f"The probe command alone, replayed on the bare loop's kept connections (every host at once): "
        f"{results['probe_replay_s'] * 1e3:.0f} ms median; the bare `kill -0` check beside it "
        f"{results['bare_kept_beside_replay_s'] * 1e3:.0f} ms (probe command + request up to "
        f"{results['probe_request_bytes']} bytes; bare script up to {results['bare_script_bytes']} bytes). "
        f"Interpreter start (`reconcile --version`): {results['python_start_s'] * 1e3:.0f} ms.",
        "",
        "The `reconcile --once` process's imports (`-X importtime`, one run): "
        + (
            f"{results['cli_imports']['total_ms']:.0f} ms in all; the largest top-level: "
            + ", ".join(f"`{r['module']}` {r['ms']:.0f}" for r in results["cli_imports"]["largest"][:8])
            if results.get("cli_imports")
            else "not measured"
        )
        + ".",
        "",
        "One host alone (the command on its kept connection, nothing else running; median ms over hosts "
        "and rounds): what each host's sshd + shell + command costs when the hosts do not share 2 cores:",
        "",
        "| command | ms |",
        "| --- | --- |",
    ]
    names = {
        "true": "`true` (channel open, exec, login shell, `sh -c`)",
        "python": "`python -S -c pass` (the probe's interpreter start)",
        "probe": "our probe (the captured command and request)",
        "bare": "the bare `kill -0` loop over the host's pids",
    }
    lines += [f"| {names[k]} | {v:.1f} |" for k, v in results["one_host_alone_ms"].items()]
    lines.append("")
    for mode in ("once", "kept"):
        lines += [
            f"cProfile of one pass, {mode} (cumulative ms; profiler overhead included):",
            "",
            "| what | calls | cum ms |",
            "| --- | --- | --- |",
        ]
        lines += [f"| {r['what']} | {r['calls']} | {r['cum_ms']:.0f} |" for r in results[f"profile_{mode}"]]
        lines += ["", "<details><summary>profile text</summary>", "", "```", results[f"profile_{mode}_text"], "```", ""]
        lines += ["</details>", ""]
    lines += [
        "cProfile of the probe script itself (first host, run directly with the request our pass sent):",
        "",
        "```",
        results.get("probe_profile_text", ""),
        "```",
        "",
    ]
    lines += ["## Checks", ""]
    lines += [f"- {c}" for c in results["checks"]] or ["- our pass is within 1.5x of the bare loop in both modes"]
    return "\n".join(lines) + "\n"


STAGES = ("load", "observe", "plan", "apply", "commit", "pass")


def _interrupt(signum: int, frame: Any) -> None:
    del signum, frame
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="experiments (default 2,000)")
    ap.add_argument("--hosts", type=int, default=8, help="ssh targets, one sshd each (default 8)")
    ap.add_argument("--rounds", type=int, default=7, help="measured rounds, every side once each (default 7)")
    ap.add_argument("--cli-runs", type=int, default=2, help="`reconcile --once` processes (default 2)")
    ap.add_argument("--rtt-ms", type=float, default=0.0, help="a delaying relay in front of every sshd (RTT in ms)")
    ap.add_argument("--login-home", action="store_true", help="sessions in root's own home (its .bashrc runs)")
    ap.add_argument("--label", default="dev-2core", help="machine label for the output files")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="output directory")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    why = Sshd.unavailable()
    if why is not None:
        print(f"bareloop: no real sshd here: {why}", file=sys.stderr)
        return 2
    os.environ.update(GIT_ENV)
    now = datetime.now(timezone.utc)
    signal.signal(signal.SIGTERM, _interrupt)  # cleanup runs (sshd, sleep processes) on SIGTERM too
    t_all = time.perf_counter()
    progress(f"bare loop: N={args.n} H={args.hosts}, {args.rounds} rounds, rtt {args.rtt_ms:g} ms")
    results = run(args)
    results["meta"] = {
        "date": f"{now:%Y-%m-%d}",
        "time": now.isoformat(timespec="seconds"),
        "label": args.label,
        "n": args.n,
        "hosts": args.hosts,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "network": f"RTT {args.rtt_ms:g} ms through a relay per host" if args.rtt_ms else "loopback, no relay",
        "shell": "root's login shell bash with root's .bashrc (pyenv init)"
        if args.login_home
        else "root's login shell bash in an empty home per host (no .bashrc)",
        "note": "A shared 2-core machine (other work beside it): wall times are noisy; the sides ran "
        "interleaved so the noise falls on both.",
    }
    results["summary"] = summarize(results)
    results["checks"] = [
        f"FAIL {name}: {value:.2f}x > {GOAL}x"
        for name, value in results["summary"]["ratios"].items()
        if value > GOAL and not name.startswith("CLI")
    ]
    results["total_s"] = time.perf_counter() - t_all
    text = markdown(results)
    print(text)
    if not args.no_write:
        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.out / f"{results['meta']['date']}-{args.label}-bareloop"
        Path(f"{stem}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
        Path(f"{stem}.md").write_text(text)
        progress(f"wrote {stem}.md, .json ({results['total_s']:.0f} s)")
    return 1 if results["checks"] else 0


if __name__ == "__main__":
    sys.exit(main())
