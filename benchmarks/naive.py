"""The naive poller: what the seed system's agents and supervisor do, over the same fleet.

Seed behaviour (``seed-system.md`` 3.6 step 6 and 4 step 5): every poll, for every running
experiment, one ``ssh host "<check>"`` — is the pid alive (``kill -0``, see ``check_script``),
then the log tail while it runs, or the exit code and ``test -s <result>`` once it stopped.
Two variants:

- ``seed``: as the seed does it: ``ssh -o ConnectTimeout=10 host "<check>"`` with the OpenSSH
  client binary, a new process and connection per command (key exchange, authentication), one
  supervisor loop going through the running experiments one after the other. Where no ``ssh``
  binary is on PATH, the product's SSH transport opens a fresh connection per command instead
  (the result's ``client`` says which);
- ``per_host``: kinder to the naive design: one connection per host kept open (the product's
  transport, ``reconciler.backends.ssh.SshTransport``), one poller per host, all hosts polled
  at the same time.

When ``max_commands`` is below the number of running experiments, only a sample is polled (the
first ones of each host, round-robin) and the wall time is scaled up linearly (each variant is a
sequential loop: per host for ``per_host``, over everything for ``seed``); the result says so.
"""

from __future__ import annotations

import asyncio
import math
import shlex
import shutil
import subprocess
import time
from dataclasses import replace
from typing import Any

from reconciler.backends.ssh import SshTransport
from reconciler.model.config import SshOptions


def check_script(pid: int, run_dir: str) -> str:
    """The per-run check. Liveness is ``kill -0`` where the seed has ``ps -p``: every simulated
    host here shares one kernel holding all N x 30 % sleep processes, and procps ``ps`` reads every
    ``/proc`` entry, which would charge the naive poller for the simulation's process count."""
    alive = f"kill -0 {pid} 2>/dev/null"
    rd = shlex.quote(run_dir)
    return (
        f"if {alive}; then echo running; tail -n 20 {rd}/stdout.log; "
        f'elif test -f {rd}/exit_code; then cat {rd}/exit_code; test -s "$(cat {rd}/result_path)" && echo result; '
        "else echo lost; fi"
    )


def _round_robin(by_host: dict[str, list[tuple[int, str]]], limit: int) -> list[tuple[str, int, str]]:
    out: list[tuple[str, int, str]] = []
    depth = max((len(v) for v in by_host.values()), default=0)
    for i in range(depth):
        for host in sorted(by_host):
            if i < len(by_host[host]) and len(out) < limit:
                out.append((host, *by_host[host][i]))
    return out


def ssh_argv(o: SshOptions) -> list[str]:
    """The OpenSSH client command line that reaches a simulated host as the seed's ``ssh host``
    would (its alias resolved here to the loopback port, key and known_hosts of the fleet)."""
    return [
        "ssh", "-F", o.config_file or "/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
        "-o", f"UserKnownHostsFile={o.known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-i", str(o.identity_file), "-p", str(o.port), f"{o.user}@{o.host}",
    ]  # fmt: skip


def _seed_openssh(options: dict[str, SshOptions], runs: list[tuple[str, int, str]]) -> tuple[int, int, list[str]]:
    commands = moved = 0
    seen = []
    for host, pid, run_dir in runs:  # the supervisor's loop: one entry after the other
        script = check_script(pid, run_dir)
        done = subprocess.run(
            [*ssh_argv(options[host]), script], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode == 255:  # ssh's own failure (the check script exits 0 or 1)
            raise RuntimeError(f"ssh to {host} failed: {done.stderr.strip()[-300:]}")
        commands += 1
        moved += len(script) + len(done.stdout) + len(done.stderr)
        seen.append(done.stdout.split("\n", 1)[0])
    return commands, moved, seen


async def _seed(options: dict[str, SshOptions], runs: list[tuple[str, int, str]]) -> tuple[int, int, list[str]]:
    commands = moved = 0
    seen = []
    for host, pid, run_dir in runs:  # the supervisor's loop: one entry after the other
        transport = await SshTransport.open(options[host], name=host, command_timeout=60)
        try:
            done = await transport.run(check_script(pid, run_dir))
        finally:
            await transport.close()
        commands += transport.commands
        moved += transport.bytes_transferred
        seen.append(done.stdout.split("\n", 1)[0])
    return commands, moved, seen


async def _per_host(
    options: dict[str, SshOptions], by_host: dict[str, list[tuple[int, str]]]
) -> tuple[int, int, list[str], float]:
    transports = {h: await SshTransport.open(options[h], name=h, command_timeout=60) for h in by_host}

    async def poll(host: str) -> list[str]:
        out = []
        for pid, run_dir in by_host[host]:
            done = await transports[host].run(check_script(pid, run_dir))
            out.append(done.stdout.split("\n", 1)[0])
        return out

    try:
        t0 = time.perf_counter()
        answers = await asyncio.gather(*(poll(h) for h in sorted(by_host)))
        wall = time.perf_counter() - t0
    finally:
        for t in transports.values():
            await t.close()
    seen = [a for chunk in answers for a in chunk]
    return (
        sum(t.commands for t in transports.values()),
        sum(t.bytes_transferred for t in transports.values()),
        seen,
        wall,
    )


def naive_poll(
    options: dict[str, SshOptions], running: dict[str, tuple[str, int, str]], variant: str, max_commands: int
) -> dict[str, Any]:
    """One poll of every running experiment; ``running`` is ``exp_id -> (host, pid, run_dir)``."""
    options = {h: replace(o) for h, o in options.items()}
    by_host: dict[str, list[tuple[int, str]]] = {}
    for exp_id in sorted(running):
        host, pid, run_dir = running[exp_id]
        by_host.setdefault(host, []).append((pid, run_dir))
    total = len(running)
    client = "asyncssh, kept connection per host"
    if variant == "seed":
        sample = _round_robin(by_host, max_commands)
        openssh = shutil.which("ssh") is not None
        client = "OpenSSH client, new process per command" if openssh else "asyncssh, new connection per command"
        t0 = time.perf_counter()
        commands, moved, seen = _seed_openssh(options, sample) if openssh else asyncio.run(_seed(options, sample))
        wall = time.perf_counter() - t0
        scale = total / len(sample) if sample else 1.0
    else:
        per = math.ceil(max_commands / max(1, len(by_host)))
        sampled = {h: runs[:per] for h, runs in by_host.items()}
        commands, moved, seen, wall = asyncio.run(_per_host(options, sampled))
        longest = max((len(v) for v in by_host.values()), default=0)
        scale = longest / per if longest > per else 1.0
    return {
        "variant": variant,
        "client": client,
        "running": total,
        "polled": len(seen),
        "running_seen": seen.count("running"),
        "extrapolated": len(seen) < total,
        "wall_s": wall * scale,
        "measured_wall_s": wall,
        "commands": round(commands * total / max(1, len(seen))),
        "bytes": round(moved * total / max(1, len(seen))),
    }
