"""Fixtures and helpers for the ``ShellRunner`` tests: one ``backend`` per transport.

``backend`` is parametrized over the transports a runner must work over unchanged: ``local``
(``LocalTransport``, always) and ``ssh`` (``SshTransport`` against the real loopback sshd of
``tests.fixtures.sshd``; skipped where that fixture skips). Add a transport by adding a param
and a branch in ``backend``. Tests poll for states with a deadline; they never sleep a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from reconciler.backends.base import Transport
from reconciler.backends.local import LocalTransport
from reconciler.backends.shell import ShellRunner
from reconciler.model.actions import Cancel, Kill, Launch
from reconciler.model.config import Target, TargetKind
from reconciler.model.ids import launch_token
from reconciler.model.observed import RunObservation
from tests.fixtures.sshd import USER as SSH_USER

T = TypeVar("T")
PROJECT = "demo"
DEADLINE = 60.0


@dataclass
class Backend:
    """A transport kind plus a root on the target that the test process can also read."""

    kind: str
    root: Path
    open_transport: Callable[[], Awaitable[Transport]]
    opened: list[Transport] = field(default_factory=list)

    def make_root(self) -> Path:
        """Create the root from the test process, writable by the transport's user too."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o777)
        return self.root

    async def transport(self) -> Transport:
        transport = await self.open_transport()
        self.opened.append(transport)
        return transport

    def target(self, **overrides: Any) -> Target:
        kind = TargetKind.LOCAL if self.kind == "local" else TargetKind.SSH
        fields: dict[str, Any] = {"name": f"t-{self.kind}", "kind": kind, "root": str(self.root)}
        fields.update(overrides)
        return Target(**fields)

    def hand_over(self) -> None:
        """Give what the test process wrote under ``runs/`` to the SSH user: a job writes its run
        dir as the target's user, and the probe reads only files that user owns (issue 15)."""
        runs = self.root / "runs"
        if self.kind != "ssh" or not runs.is_dir():
            return
        account = pwd.getpwnam(SSH_USER)
        for path in [runs, *runs.rglob("*")]:
            os.lchown(path, account.pw_uid, account.pw_gid)

    async def runner(self, transport: Transport | None = None, **overrides: Any) -> ShellRunner:
        transport = transport or await self.transport()
        self.hand_over()
        return ShellRunner(self.target(**overrides), transport, self.root.parent, PROJECT, kill_grace=5.0)


@pytest.fixture(params=["local", pytest.param("ssh", marks=pytest.mark.ssh)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "local":
        root = tmp_path / "root"

        async def open_local() -> Transport:
            return LocalTransport("local")

        made = Backend("local", root, open_local)
    else:
        hosts = request.getfixturevalue("sshd_hosts")
        base: Path = request.getfixturevalue("rctest_dir")
        from reconciler.backends.ssh import SshTransport

        async def open_ssh() -> Transport:
            return await SshTransport.open(hosts[0].options(), name="ssh")

        made = Backend("ssh", base / "root", open_ssh)
    yield made


def run(coro: Awaitable[T]) -> T:
    """Run one test scenario in a fresh event loop."""

    async def main() -> T:
        return await coro

    return asyncio.run(main())


async def poll(check: Callable[[], Awaitable[T | None]], what: str, deadline: float = DEADLINE) -> T:
    """Await ``check`` until it returns something truthy (or fail after ``deadline`` s)."""
    end = time.monotonic() + deadline
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def wait_until(check: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def make_launch(root: Path, command: str, *, exp_id: str | None = None, attempt: int = 1, **kw: Any) -> Launch:
    exp_id = exp_id or f"E{uuid.uuid4().hex[:8]}_s0"
    commit = kw.pop("commit", "c0ffee")
    code_dir = root / "code" / commit
    code_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):
        os.chmod(root, 0o777)  # the ssh user must be able to create dirs in a root-made tree
        for p in (root / "code", code_dir):
            os.chmod(p, 0o777)
    fields: dict[str, Any] = {
        "exp_id": exp_id,
        "target": "t",
        "attempt": attempt,
        "command": command,
        "run_dir": f"{root}/runs/{exp_id}/{attempt}",
        "token": launch_token(PROJECT, exp_id, attempt),
        "code_dir": str(code_dir),
        "commit": commit,
        "result_file": f"experiments/results/{exp_id}.csv",
        "checkpoint_dir": f"{root}/checkpoints/{exp_id}",
    }
    fields.update(kw)
    return Launch(**fields)


def kill_for(action: Launch, pid: int | None, start_time: str | None) -> Kill:
    return Kill(
        exp_id=action.exp_id,
        target=action.target,
        attempt=action.attempt,
        run_dir=action.run_dir,
        pid=pid,
        start_time=start_time,
        reason=Cancel("test"),
    )


def proc_state(pid: int) -> tuple[str, str] | None:
    """(state, start time) of ``pid`` from /proc, None when it does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2 :].split()
    return rest[0].decode(), rest[19].decode()


def running(pid: int) -> bool:
    state = proc_state(pid)
    return state is not None and state[0] not in "ZX"


# Runs until the test creates ``go`` (bounded: 3000 polls, so a failed test leaves nothing behind).
WAIT_FOR_GO = (
    'i=0; while [ ! -f "$RECONCILER_RUN_DIR/go" ] && [ $i -lt 3000 ]; do sleep 0.05; i=$((i+1)); done; echo finished'
)
SPAWN_CHILD = 'sleep 120 & echo $! > "$RECONCILER_RUN_DIR/child.pid"; sleep 121'


async def observe(runner: ShellRunner, exp_id: str, attempt: int = 1) -> RunObservation | None:
    obs = await runner.probe(want=[(exp_id, attempt)])
    return obs.run(exp_id, attempt)


async def finished(runner: ShellRunner, exp_id: str, attempt: int = 1) -> RunObservation | None:
    """The run's observation once it has an exit code, else None (for ``poll``)."""
    run_obs = await observe(runner, exp_id, attempt)
    return run_obs if run_obs is not None and run_obs.exit_code is not None else None


async def exists(path: Path) -> bool:
    return path.exists()


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                data = (entry / "stat").read_bytes()
            except OSError:
                continue
            rest = data[data.rfind(b")") + 2 :].split()
            if int(rest[2]) == pgid and rest[0] not in (b"Z", b"X"):
                members.append(int(entry.name))
    return members


def fake_run_dir(root: Path, exp_id: str, pid: int, start_time: str) -> Path:
    run_dir = root / "runs" / exp_id / "1"
    run_dir.mkdir(parents=True)
    (run_dir / "token").write_text(launch_token("demo", exp_id, 1) + "\n")
    (run_dir / "launch.lock").mkdir()
    (run_dir / "pid").write_text(f"{pid}\n")
    (run_dir / "start_time").write_text(f"{start_time}\n")
    return run_dir


def orphaned_group(env: dict[str, str] | None = None) -> tuple[int, str, int]:
    """A process group whose leader is dead and reaped, with one member left: (pgid, leader's
    start time, the member's pid)."""
    leader = subprocess.Popen(
        ["sh", "-c", "sleep 300 & echo $!; exec sleep 299"],
        start_new_session=True,
        stdout=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    assert leader.stdout is not None
    orphan = int(leader.stdout.readline())
    leader.stdout.close()
    state = proc_state(leader.pid)
    assert state is not None
    leader.kill()
    leader.wait()  # reaped: /proc/<leader> is gone, its group lives on in the orphan
    return leader.pid, state[1], orphan
