"""Pure parts of the SSH layer: jump specs, alias resolution for messages, SFTP paths (no sshd)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.backends.ssh import _sftp_path
from reconciler.backends.sshconfig import Endpoint, endpoint, parse_jump
from reconciler.model.config import SshOptions
from tests.fixtures.sshd import write_ssh_config


@pytest.mark.parametrize(
    ("spec", "hops"),
    [
        ("bastion", [(None, "bastion", None)]),
        ("me@10.0.0.1:2222", [("me", "10.0.0.1", 2222)]),
        ("ssh://me@gw:22, you@[::1]:2200", [("me", "gw", 22), ("you", "::1", 2200)]),
        ("[::1]", [(None, "::1", None)]),
        ("a@b@host", [("a@b", "host", None)]),
    ],
)
def test_parse_jump(spec: str, hops: list[tuple[str | None, str, int | None]]) -> None:
    assert parse_jump(spec) == hops


def test_endpoint_resolves_an_alias_through_the_config_file(tmp_path: Path) -> None:
    config = write_ssh_config(tmp_path / "config", {"lab1": {"HostName": "127.0.0.2", "Port": 2200, "User": "alice"}})
    options = SshOptions(host="lab1", config_file=str(config))
    assert endpoint(options) == Endpoint("alice", "127.0.0.2", 2200, "lab1")
    assert str(endpoint(options)) == "lab1 (alice@127.0.0.2:2200)"
    explicit = SshOptions(host="lab1", config_file=str(config), port=22, user="bob")
    assert str(endpoint(explicit)) == "lab1 (bob@127.0.0.2:22)"


def test_endpoint_without_config_names_the_host_itself(tmp_path: Path) -> None:
    empty = tmp_path / "config"
    empty.write_text("")
    options = SshOptions(host="127.0.0.3", port=2222, user="rc", config_file=str(empty))
    assert str(endpoint(options)) == "rc@127.0.0.3:2222"


@pytest.mark.parametrize(
    ("remote", "sftp"),
    [("~", "."), ("~/runs/x", "runs/x"), ("/abs/path", "/abs/path"), ("rel/path", "rel/path")],
)
def test_sftp_paths_start_in_the_home(remote: str, sftp: str) -> None:
    assert _sftp_path(remote) == sftp
