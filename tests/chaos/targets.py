"""Targets of the GPU and SSH scenarios: their config blocks, and real OpenSSH hosts on loopback.

A GPU scenario (``CHAOS_GPU`` share) has two ``local`` targets ``ta``/``tb`` with fake GPUs
(``tests.chaos.gpus``); an SSH scenario (``CHAOS_SSH`` share) has two ``ssh`` targets ``sa``/``sb``
on their own pair of ``sshd`` (127.0.0.2 and 127.0.0.3, one free port, started for the scenario
with ``tests.fixtures.sshd``'s machinery: user ``rctest``, throwaway keys) with fake GPUs too. The
SSH scenarios need root and ``/usr/sbin/sshd``; without them they are skipped (``ssh_available``).

Each target reaches its fake through its settings, as ``tests.fixtures.fake_gpu`` does: the probe
through ``python: env PATH=<fake>:... CHAOS_...=... python3``; the environment check and the jobs
through ``env.setup`` (``PATH``) and ``env.variables`` (which host, the scenario's tag, the tables).
Everything an SSH target's user writes (target roots, the launch log) lives in a directory under
``rctest``'s home that belongs to it (``SshFleet.home_dir``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

from tests.chaos.gpus import GpuHost
from tests.fixtures import sshd as fixture

GPU_TARGETS = ("ta", "tb")
SSH_TARGETS = ("sa", "sb")
REMOTE_PATH = "/usr/local/bin:/usr/bin:/bin"
_STARTING = threading.Lock()
"""Scenarios played side by side start their fleets one at a time: a port found free stays the
one fleet's until its sshd listens (and ``useradd`` runs once)."""


def ssh_available() -> str | None:
    """Why SSH scenarios cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "not root"
    if not fixture.SSHD.exists() or shutil.which("ssh-keygen") is None or shutil.which("useradd") is None:
        return "no sshd/ssh-keygen/useradd"
    return None


class SshFleet:
    """Two sshd "hosts" of one scenario, and a directory of ``rctest``'s for its target roots."""

    def __init__(self) -> None:
        with _STARTING:
            self._start()

    def _start(self) -> None:
        account = fixture._ensure_user()
        self.uid, self.gid = account.pw_uid, account.pw_gid
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.scratch = Path(tempfile.mkdtemp(prefix="chaos-sshd-"))
        self.scratch.chmod(0o755)
        self.home_dir = Path(account.pw_dir) / f"chaos-{uuid.uuid4().hex[:12]}"
        self.home_dir.mkdir(mode=0o755)
        os.chown(self.home_dir, self.uid, self.gid)
        client_key = self.scratch / "client_ed25519"
        authorized = self.scratch / "authorized_keys"
        authorized.write_text(fixture._keygen(client_key, "reconciler-chaos") + "\n")
        authorized.chmod(0o644)
        known_hosts = self.scratch / "known_hosts"
        empty = self.scratch / "empty_ssh_config"
        empty.write_text("")
        port = fixture._free_port()
        entries = []
        self.hosts: dict[str, fixture.SshdHost] = {}
        for i, (name, address) in enumerate(zip(SSH_TARGETS, fixture.ADDRESSES, strict=True), start=1):
            host_key = self.scratch / f"host{i}_ed25519"
            entries.append(f"[{address}]:{port} {fixture._keygen(host_key, f'host{i}')}")
            config = self.scratch / f"sshd{i}.conf"
            text = fixture.SSHD_CONFIG.format(
                port=port, address=address, host_key=host_key, authorized_keys=authorized, user=fixture.USER
            )
            config.write_text(text + "PerSourcePenalties no\n")
            if subprocess.run([str(fixture.SSHD), "-t", "-f", str(config)], capture_output=True).returncode:
                config.write_text(text)
            self.hosts[name] = fixture.SshdHost(
                name=name,
                address=address,
                port=port,
                user=fixture.USER,
                key_path=client_key,
                known_hosts=known_hosts,
                home=Path(account.pw_dir),
                sshd_config=config,
                log_path=self.scratch / f"sshd{i}.log",
                empty_config=empty,
            )
        known_hosts.write_text("\n".join(entries) + "\n")
        for host in self.hosts.values():
            host.start()

    def own(self, path: Path) -> None:
        """Hand ``path`` (a file or directory of the scenario) to the targets' user."""
        os.chown(path, self.uid, self.gid)

    def root(self, target: str) -> Path:
        return self.home_dir / target

    def down(self, target: str) -> None:
        """The host stops answering: its listener dies (a pass's own connections die with it)."""
        self.hosts[target].stop()

    def up(self, target: str) -> None:
        self.hosts[target].start()

    def close(self) -> None:
        for host in self.hosts.values():
            with contextlib.suppress(Exception):
                host.stop()
        shutil.rmtree(self.scratch, ignore_errors=True)
        shutil.rmtree(self.home_dir, ignore_errors=True)


def probe_python(bin_dir: Path, variables: dict[str, str]) -> str:
    """The target's ``python`` setting: the interpreter with the fake first on ``PATH``."""
    words = ["env", f"PATH={bin_dir}:{REMOTE_PATH}", *(f"{k}={v}" for k, v in sorted(variables.items())), "python3"]
    return " ".join(words)


def target_block(
    name: str,
    *,
    root: str,
    bin_dir: Path,
    variables: dict[str, str],
    max_runs_per_gpu: int,
    vram_factor: float,
    ssh: fixture.SshdHost | None = None,
) -> str:
    """One target of a GPU or SSH scenario's ``config/reconciler.yaml`` (YAML text, indented)."""
    lines = [f"  {name}:", f"    kind: {'ssh' if ssh else 'local'}"]
    if ssh is not None:
        lines += [
            f"    host: {ssh.address}",
            f"    port: {ssh.port}",
            f"    user: {ssh.user}",
            f"    identity_file: {ssh.key_path}",
            f"    known_hosts: {ssh.known_hosts}",
            f"    config_file: {ssh.empty_config}",
        ]
    setup = f'export PATH={bin_dir}:"$PATH"'
    lines += [
        f"    root: {root}",
        f"    python: {json.dumps(probe_python(bin_dir, variables))}",
        "    max_runs: 8",
        "    env:",
        f"      setup: [{json.dumps(setup)}]",
        "      variables: {" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in sorted(variables.items())) + "}",
        "    gpus:",
        "      blacklist_models: []",
        f"      max_runs_per_gpu: {max_runs_per_gpu}",
        f"      vram_factor: {vram_factor}",
    ]
    return "\n".join(lines) + "\n"


def gpu_tables(rng_choices: list[int], names: tuple[str, ...]) -> dict[str, tuple[GpuHost, ...]]:
    """Two H100s per host; ``rng_choices`` (one per host) is the foreign load on its GPU 1 (MiB)."""
    return {
        name: (GpuHost(0, host_no=i), GpuHost(1, base_used=4 + foreign, host_no=i))
        for i, (name, foreign) in enumerate(zip(names, rng_choices, strict=True))
    }
