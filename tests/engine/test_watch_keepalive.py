"""Watch mode keeps its SSH connections open from one pass to the next (issue 20).

``watch`` runs in this process (poll interval 0.2 s, stopped by SIGTERM after N passes) against SSH targets
reached through the benchmark's relay (``benchmarks.relay``, no delay added here): the relay counts
the TCP connections the controller opens, so "one connection setup per host across N passes" is
read on the wire, not from the code under test. After a few passes the relay aborts every open
connection (a restarted server, a network failure): the next pass must reconnect and succeed.
Two kinds of server: the benchmark's in-process asyncssh servers (``benchmarks.sshfleet``, no
root needed) and the tests' real OpenSSH (``tests.fixtures.sshd``, the ssh tier).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from benchmarks.fleet import JOB, kill_launched
from benchmarks.relay import Network, Relays
from benchmarks.sshfleet import SshFleet
from reconciler import watch as watch_mod
from reconciler.engine import PassResult, reconcile_once
from reconciler.model.status import Status
from reconciler.targets import KeptConnections
from tests.fixtures.sshd import SshdHost, wait_for
from tests.projectkit import commit_project

pytestmark = pytest.mark.slow  # a few seconds each: in the full tier (pytest -q -m "")


def target_yaml(name: str, port: int, user: str, key: Path, known_hosts: Path, config: Path, root: str) -> str:
    return (
        f"  {name}:\n    kind: ssh\n    host: 127.0.0.1\n    port: {port}\n    user: {user}\n"
        f"    identity_file: {key}\n    known_hosts: {known_hosts}\n    config_file: {config}\n"
        f"    root: {root}\n    max_runs: 4\n"
    )


def make_project(tmp_path: Path, targets: dict[str, str]) -> Path:
    """One long-running experiment per target (``targets``: name -> its config block)."""
    specs = "".join(
        f"  - id: run_{name}\n    command: 'sh job.sh {{exp_id}}'\n    targets: [{name}]\n" for name in targets
    )
    files = {
        "config/reconciler.yaml": (
            f"version: 1\nproject: keep\ntargets:\n{''.join(targets.values())}policies:\n  poll_interval: 0.2\n"
            "  connect_timeout: 10\n  command_timeout: 60\n  backoff: {base_seconds: 0, factor: 1, max_seconds: 0}\n"
        ),
        "dispatch/experiments.yaml": (
            "version: 1\ndefaults:\n  expected_duration_hours: 100\n  max_retries: 0\nexperiments:\n" + specs
        ),
        "job.sh": JOB,
    }
    return commit_project(tmp_path / "project", files)


@dataclass
class Watched:
    results: list[PassResult] = field(default_factory=list)
    before_drop: dict[str, int] = field(default_factory=dict)
    """TCP connections per host accepted by the relay before it dropped them."""
    after: dict[str, int] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


def watch_and_drop(
    project: Path, relays: Relays, monkeypatch: pytest.MonkeyPatch, *, drop_after: int, passes: int
) -> Watched:
    """``watch`` for ``passes`` passes (then SIGTERM: it stops after the pass, as a person's
    kill would); the relay aborts every connection after pass ``drop_after``."""
    seen = Watched()

    def counted(project_dir: Path, **kwargs: Any) -> PassResult:
        result = reconcile_once(project_dir, **kwargs)
        seen.results.append(result)
        if len(seen.results) == drop_after:
            seen.before_drop = {n: s["connections"] for n, s in relays.stats().items()}
            assert relays.drop() > 0
            wait_for(lambda: all(s["open"] == 0 for s in relays.stats().values()), "the relay to drop")
        if len(seen.results) == passes:
            os.kill(os.getpid(), signal.SIGTERM)  # watch's own handler: stop after this pass
        return result

    monkeypatch.setattr(watch_mod, "reconcile_once", counted)
    assert watch_mod.watch([project], log=seen.log.append, max_passes=1000) == 0
    seen.after = {n: s["connections"] for n, s in relays.stats().items()}
    return seen


def check(seen: Watched, hosts: list[str], drop_after: int) -> None:
    log = "\n".join(seen.log)
    assert len(seen.results) >= drop_after + 2, log  # rounds ran out first (a wake without a pass)
    for i, result in enumerate(seen.results):
        assert not result.unreachable, f"pass {i + 1}: {result.unreachable}\n{log}"
        assert all(r.ok for r in result.results), f"pass {i + 1}: {[r.message for r in result.results]}"
    assert seen.before_drop == dict.fromkeys(hosts, 1), f"{drop_after} passes: {seen.before_drop}"
    assert seen.after == dict.fromkeys(hosts, 2), f"{len(seen.results)} passes, one drop: {seen.after}"
    last = seen.results[-1].state.entries
    assert [e.status for e in last] == [Status.RUNNING] * len(hosts)


@pytest.fixture
def asyncssh_fleet(tmp_path: Path) -> Iterator[tuple[SshFleet, Path]]:
    fleet = SshFleet(tmp_path / "fleet", ["t0", "t1"], network=Network(rtt=0.0)).start()
    assert fleet.relays is not None
    roots = {n: str(fleet.hosts[n].home / "root") for n in fleet.names}
    python = os.path.realpath(sys.executable)
    blocks = {
        n: fleet.target_yaml(n, roots[n], 4).replace("    max_runs:", f"    python: {python}\n    max_runs:")
        for n in fleet.names
    }
    try:
        yield fleet, make_project(tmp_path, blocks)
    finally:
        kill_launched(roots.values())
        fleet.stop()


def test_watch_sets_up_one_connection_per_host_and_reconnects_after_a_drop(
    asyncssh_fleet: tuple[SshFleet, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet, project = asyncssh_fleet
    assert fleet.relays is not None
    seen = watch_and_drop(project, fleet.relays, monkeypatch, drop_after=4, passes=7)
    check(seen, fleet.names, drop_after=4)


def test_kept_connections_serve_every_pass_and_close(asyncssh_fleet: tuple[SshFleet, Path]) -> None:
    """``reconcile_once(kept=...)`` as watch mode calls it: the pool's setups, then a clean close."""
    fleet, project = asyncssh_fleet
    assert fleet.relays is not None
    kept = KeptConnections()
    try:
        for _ in range(4):
            result = reconcile_once(project, log=lambda _m: None, kept=kept)
            assert not result.unreachable
        assert kept.connects == 2
        assert {n: s["open"] for n, s in fleet.relays.stats().items()} == {"t0": 1, "t1": 1}
    finally:
        kept.close()
    wait_for(lambda: all(s["open"] == 0 for s in fleet.relays.stats().values()), "the connections to close")
    # closed is not broken: the next pass starts a new loop and new connections
    try:
        assert not reconcile_once(project, log=lambda _m: None, kept=kept).unreachable
        assert kept.connects == 2
    finally:
        kept.close()
    assert {n: s["connections"] for n, s in fleet.relays.stats().items()} == {"t0": 2, "t1": 2}


@pytest.mark.ssh
def test_watch_over_real_sshd_keeps_one_connection_and_reconnects(
    sshd_hosts: list[SshdHost], rctest_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = sshd_hosts[0]
    relays = Relays(Network(rtt=0.0), {"gpu1": (host.address, host.port)}).start()
    try:
        key = next(
            line.split(None, 1)[1]
            for line in host.known_hosts.read_text().splitlines()
            if line.startswith(f"[{host.address}]:{host.port} ")
        )
        known = tmp_path / "known_hosts"
        known.write_text(f"[127.0.0.1]:{relays.ports['gpu1']} {key}\n")
        root = f"{rctest_dir.name}/runs"  # relative: under rctest's $HOME
        block = target_yaml("gpu1", relays.ports["gpu1"], host.user, host.key_path, known, host.empty_config, root)
        project = make_project(tmp_path, {"gpu1": block})
        try:
            seen = watch_and_drop(project, relays, monkeypatch, drop_after=3, passes=6)
        finally:
            kill_launched([str(rctest_dir / "runs")])
        check(seen, ["gpu1"], drop_after=3)
    finally:
        relays.stop()
