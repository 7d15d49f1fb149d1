"""Connecting: host key checks, authentication, ssh_config aliases and ProxyJump, on real sshd."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from pathlib import Path

import pytest

from reconciler.backends.ssh import SshTransport
from reconciler.errors import ConnectError
from reconciler.model.config import SshOptions
from tests.fixtures.sshd import SshdHost, wait_for, write_ssh_config

pytestmark = pytest.mark.ssh


def _run(options: SshOptions, script: str = "echo $SSH_CONNECTION") -> str:
    async def scenario() -> str:
        transport = await SshTransport.open(options, connect_timeout=5, command_timeout=30)
        try:
            done = await transport.run(script)
        finally:
            await transport.close()
        assert done.returncode == 0, done
        return done.stdout

    return asyncio.run(scenario())


def _connect_error(options: SshOptions) -> ConnectError:
    with pytest.raises(ConnectError) as info:
        _run(options)
    assert info.value.__cause__ is not None  # raised "from" the foreign exception
    return info.value


def test_host_key_mismatch_is_a_connect_error(sshd_hosts: list[SshdHost], tmp_path: Path) -> None:
    first, second = sshd_hosts
    lines = first.known_hosts.read_text().splitlines()
    other_key = next(line for line in lines if line.startswith(f"[{second.address}]")).split(maxsplit=1)[1]
    forged = tmp_path / "known_hosts"
    forged.write_text(f"[{first.address}]:{first.port} {other_key}\n")
    error = _connect_error(first.options(known_hosts=str(forged)))
    assert "host key mismatch" in str(error)
    assert f"{first.address}:{first.port}" in str(error)


def test_host_key_mismatch_through_the_configs_known_hosts(sshd_hosts: list[SshdHost], tmp_path: Path) -> None:
    first, second = sshd_hosts
    lines = first.known_hosts.read_text().splitlines()
    other_key = next(line for line in lines if line.startswith(f"[{second.address}]")).split(maxsplit=1)[1]
    forged = tmp_path / "known_hosts"
    forged.write_text(f"[{first.address}]:{first.port} {other_key}\n")
    config = write_ssh_config(tmp_path / "config", {"lab1": first.config_entry(UserKnownHostsFile=str(forged))})
    error = _connect_error(SshOptions(host="lab1", config_file=str(config)))
    assert f"host key mismatch for lab1 (rctest@{first.address}:{first.port})" in str(error)


def test_unknown_host_is_refused_in_strict_mode(sshd_hosts: list[SshdHost], tmp_path: Path) -> None:
    host = sshd_hosts[0]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    error = _connect_error(host.options(known_hosts=str(empty)))
    assert "unknown host key" in str(error)
    assert f"{host.address}:{host.port}" in str(error)
    # The same host is accepted when checking is off.
    assert host.address in _run(host.options(known_hosts=str(empty), strict_host_key_checking=False))


def test_wrong_key_is_an_authentication_failure(sshd_hosts: list[SshdHost], tmp_path: Path) -> None:
    host = sshd_hosts[0]
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    error = _connect_error(host.options(identity_file=str(stranger)))
    assert "authentication failed" in str(error)
    assert f"rctest@{host.address}:{host.port}" in str(error)


def test_nothing_listening_is_a_connect_error(sshd_hosts: list[SshdHost]) -> None:
    host = sshd_hosts[0]
    with socket.socket() as sock:
        sock.bind((host.address, 0))
        closed_port = sock.getsockname()[1]
    error = _connect_error(host.options(port=closed_port))
    assert f"cannot connect to rctest@{host.address}:{closed_port}" in str(error)


def test_config_file_alias(sshd_hosts: list[SshdHost], tmp_path: Path) -> None:
    host = sshd_hosts[0]
    config = write_ssh_config(tmp_path / "config", {"lab1": host.config_entry()})
    out = _run(SshOptions(host="lab1", config_file=str(config)), "echo $SSH_CONNECTION; id -un")
    assert out.split()[2:] == [host.address, str(host.port), "rctest"]


def test_explicit_options_override_the_config_file(sshd_hosts: list[SshdHost], tmp_path: Path) -> None:
    host = sshd_hosts[0]
    with socket.socket() as sock:
        sock.bind((host.address, 0))
        wrong_port = sock.getsockname()[1]
    entry = host.config_entry(Port=wrong_port, User="nobody-here")
    config = write_ssh_config(tmp_path / "config", {"lab1": entry})
    options = SshOptions(host="lab1", config_file=str(config), port=host.port, user="rctest")
    assert _run(options, "id -un") == "rctest\n"
    # Without the overrides the alias resolves to the config's port, named in the message.
    error = _connect_error(SshOptions(host="lab1", config_file=str(config)))
    assert f"lab1 (nobody-here@{host.address}:{wrong_port})" in str(error)


def _socket_owners(local_port: int) -> set[int]:
    """PIDs holding the TCP socket whose local port is ``local_port`` (client end of a connection)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == local_port and fields[3] == "01":  # ESTABLISHED
            inodes.add(f"socket:[{fields[9]}]")
    owners = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                    owners.add(int(proc.name))
            except OSError:
                continue
    return owners


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def _client_owners(out: str, target: SshdHost) -> set[str]:
    """Names of the processes holding the client end of the connection ``out`` came through."""
    assert out.split()[2:4] == [target.address, str(target.port)]
    owners = _socket_owners(int(out.split()[1]))
    assert owners, "the connection's client end was not found"
    return {"this test" if pid == os.getpid() else _comm(pid) for pid in owners}


def test_proxy_jump_option_through_the_second_sshd(sshd_hosts: list[SshdHost]) -> None:
    target, jump = sshd_hosts

    async def owners(options: SshOptions) -> set[str]:
        transport = await SshTransport.open(options, connect_timeout=5)
        try:  # checked while the connection is open
            return _client_owners((await transport.run("echo $SSH_CONNECTION")).stdout, target)
        finally:
            await transport.close()

    assert asyncio.run(owners(target.options())) == {"this test"}  # control: a direct connection
    via_jump = target.options(proxy_jump=f"rctest@{jump.address}:{jump.port}")
    assert asyncio.run(owners(via_jump)) == {"sshd"}  # the jump host's sshd opened it


def test_proxy_jump_from_the_config_file(sshd_hosts: list[SshdHost], tmp_path: Path) -> None:
    target, jump = sshd_hosts
    config = write_ssh_config(
        tmp_path / "config",
        {"bastion": jump.config_entry(), "lab1": target.config_entry(ProxyJump="bastion")},
    )

    async def scenario() -> None:
        transport = await SshTransport.open(SshOptions(host="lab1", config_file=str(config)))
        try:
            out = (await transport.run("echo $SSH_CONNECTION")).stdout
            assert _client_owners(out, target) == {"sshd"}
        finally:
            await transport.close()

    asyncio.run(scenario())


def test_unreachable_jump_host_is_named(sshd_hosts: list[SshdHost]) -> None:
    target = sshd_hosts[0]
    with socket.socket() as sock:
        sock.bind(("127.0.0.3", 0))
        closed_port = sock.getsockname()[1]
    error = _connect_error(target.options(proxy_jump=f"rctest@127.0.0.3:{closed_port}"))
    assert f"127.0.0.3:{closed_port}" in str(error)


def test_missing_identity_file_is_named(sshd_hosts: list[SshdHost], tmp_path: Path) -> None:
    error = _connect_error(sshd_hosts[0].options(identity_file=str(tmp_path / "no-key")))
    assert str(tmp_path / "no-key") in str(error)


def test_silent_server_hits_the_connect_timeout(sshd_hosts: list[SshdHost]) -> None:
    host = sshd_hosts[0]
    with socket.socket() as silent:  # the kernel completes the TCP handshake; no SSH banner follows
        silent.bind((host.address, 0))
        silent.listen()

        async def scenario() -> None:
            await SshTransport.open(host.options(port=silent.getsockname()[1]), connect_timeout=0.5)

        with pytest.raises(ConnectError, match=r"no answer within 0\.5s") as info:
            asyncio.run(scenario())
    assert f"{host.address}:" in str(info.value)


def test_defaults_read_the_users_ssh_config_and_known_hosts(
    sshd_hosts: list[SshdHost], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = sshd_hosts[0]
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    entry = host.config_entry()
    del entry["UserKnownHostsFile"]
    write_ssh_config(home / ".ssh" / "config", {"lab1": entry})
    error = _connect_error(SshOptions(host="lab1"))  # no ~/.ssh/known_hosts: nothing is trusted
    assert "unknown host key" in str(error)
    (home / ".ssh" / "known_hosts").write_text(host.known_hosts.read_text())
    assert _run(SshOptions(host="lab1"), "id -un") == "rctest\n"


def test_agent_authentication(sshd_hosts: list[SshdHost], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = sshd_hosts[0]
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        wait_for(sock.exists, "the agent's socket")
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(host.key_path)], env=env, check=True, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        monkeypatch.setenv("HOME", str(tmp_path))  # no default ~/.ssh/id_* keys to fall back on
        assert _run(host.options(identity_file=None), "id -un") == "rctest\n"
    finally:
        agent.kill()
        agent.wait()
