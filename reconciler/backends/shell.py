"""``ShellRunner``: the ``Runner`` of targets whose runs are plain detached processes.

It serves ``local`` targets (over ``LocalTransport``) and ``ssh`` targets (over the SSH
transport) unchanged: it uses only ``transport.run``, ``put`` and ``get``. The observe stage
calls ``probe``; the apply stage calls ``ship_code``, ``env_check``, ``launch``, ``collect`` and ``kill``.
The scripts come from the pure builders in ``wrapper``, ``scripts`` and ``envcheck``; the probe's request
and parse live in ``probe``. The remote layout under the target's root ``R``::

    R/.reconciler/probe-<hash>.py     the installed probe
    R/code/<commit>/                  unpacked tree, ``.complete`` written last
    R/runs/<exp_id>/<attempt>/        token, launch.json, launch.lock/, wrapper.sh, pid, start_time, host,
                                      heartbeat, stdout.log, exit_code, result_path, status.json
    R/checkpoints/<exp_id>/
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import secrets
import shlex
from collections.abc import Collection, Mapping
from datetime import datetime, timezone
from pathlib import Path

from reconciler.backends import envcheck, envrepair, logread, scripts, wrapper
from reconciler.backends import probe as probe_mod
from reconciler.backends.base import Completed, Transport
from reconciler.crashpoints import crash_point
from reconciler.errors import InvalidTarget, LeaseRefused, PermanentError, TemporaryError, TransportError
from reconciler.model.actions import CheckEnv, Collect, Kill, Launch, Started
from reconciler.model.config import Limits, Target, TargetKind
from reconciler.model.env import EnvVerdict
from reconciler.model.observed import TargetObservation
from reconciler.model.seedrun import SeedRun

PROBE_MARK = "@@reconciler-probe@@"
"""Separates a prefix's output (a batch scheduler's answer) from the probe's in one command."""


def resolve_root(target: Target, project_dir: Path | None) -> str:
    """The root as the runner sends it: the relative root of a target on this machine (``local``,
    or a batch cluster whose login host this is) is made absolute against the project dir; targets
    reached over SSH keep it (``~``/relative resolve on the target)."""
    root = target.root
    if target.ssh is not None or target.kind is TargetKind.SSH or root.startswith("/"):
        return root
    if root.startswith("~"):
        return os.path.expanduser(root)
    if project_dir is None:
        raise InvalidTarget(f"target {target.name}: relative root {root!r} needs the project dir", "InvalidTarget")
    return str((Path(project_dir) / root).resolve())


class ShellRunner:
    """A target whose runs are ``setsid nohup`` processes (see the module docstring)."""

    def __init__(
        self,
        target: Target,
        transport: Transport,
        project_dir: Path | None,
        project: str,
        *,
        command_timeout: float = 120.0,
        kill_grace: float = 10.0,
        start_wait: float = 5.0,
        log_tail: int = 20,
    ) -> None:
        self.name = target.name
        self.target = target
        self.transport = transport
        self.project = project
        self.root = resolve_root(target, project_dir)
        """The root as sent to the target (absolute for ``local``; may start with ``~`` otherwise)."""
        self.command_timeout = command_timeout
        self.kill_grace = kill_grace
        self.start_wait = start_wait
        self.log_tail = log_tail
        self.read_only = False
        """Touch nothing on the target (``reconcile plan``): the probe is sent inline, never installed."""
        self.limits = Limits()
        """Caps on what the target sends (``policies.limits``; ``open_runners`` sets the project's)."""
        self.probe_received: int | None = None
        """Bytes of stdout and stderr the last probe's command(s) returned (the pass's metrics)."""

    async def _run(self, script: str, *, stdin: bytes | None = None, timeout: float | None = None) -> Completed:
        return await self.transport.run(
            script, stdin=stdin, timeout=timeout or self.command_timeout, max_output=self.limits.probe_bytes
        )

    def _fail(self, what: str, done: Completed) -> TransportError:
        detail = (done.stderr.strip() or done.stdout.strip())[-500:]
        return TransportError(f"{self.name}: {what} failed (exit {done.returncode}): {detail}")

    async def probe(
        self,
        want: Collection[tuple[str, int]] = (),
        jobs: Mapping[tuple[str, int], str] | None = None,
        seed: Mapping[tuple[str, int], SeedRun] | None = None,
    ) -> TargetObservation:
        """One remote command in the steady state (two and a ``put`` when the probe is new; always
        one, with the probe inline and nothing installed, when ``read_only``).

        Every run dir gets a compact record; runs without an exit code and the runs in ``want``
        also get liveness, heartbeat age, result size, sidecar and log tail. The observer must
        pass in ``want`` every run its status records as unfinished: a run that ended since
        the last pass has an exit code, and its result size and log tail come only on request.
        ``jobs`` (recorded batch job ids) is for batch runners; processes need none. ``seed``:
        the runs the seed started (``model.seedrun``), looked at by pid and their files.
        """
        observation, _ = await self._probe(want, seed=seed)
        return observation

    async def _probe(
        self,
        want: Collection[tuple[str, int]],
        prefix: str | None = None,
        seed: Mapping[tuple[str, int], SeedRun] | None = None,
    ) -> tuple[TargetObservation, str]:
        """The probe, with ``prefix`` (a shell snippet, e.g. a scheduler query) run first in the
        same remote command; returns the observation and what the prefix printed."""
        before = self.transport.commands
        request = probe_mod.probe_request(self.root, want, self.log_tail, seed, self.target.gpus.leases)
        name = probe_mod.probe_name()
        python = self.target.python

        def command(install_from: str | None = None) -> str:
            if self.read_only:
                probe = scripts.inline_probe_command(probe_mod.probe_source().decode(), python)
            else:
                probe = scripts.probe_command(self.root, name, python, install_from=install_from)
            if prefix is None:
                return probe
            return f"( {prefix}\n) </dev/null 2>&1\nprintf '\\n%s\\n' {PROBE_MARK}\n{probe}"

        done = await self._run(command(), stdin=request)
        self.probe_received = _size(done)
        if done.returncode == scripts.PROBE_MISSING_EXIT:
            printed = done.stdout.strip().splitlines()
            if not printed:
                raise self._fail("probe install", done)
            reconciler_dir = printed[-1]
            tmp = f".{name}.{secrets.token_hex(4)}.tmp"
            with probe_mod.probe_file() as local:
                await self.transport.put(local, posixpath.join(reconciler_dir, tmp))
            done = await self._run(command(install_from=tmp), stdin=request)
            self.probe_received += _size(done)
        if done.returncode == 127 and (prefix is None or PROBE_MARK in done.stdout):
            raise InvalidTarget(f"{self.name}: {python!r} not found on the target: {done.stderr.strip()}")
        if done.returncode != 0:
            raise self._fail("probe", done)
        prefix_out, probe_out = "", done.stdout
        if prefix is not None:
            head, mark, tail = done.stdout.rpartition(f"\n{PROBE_MARK}\n")
            if not mark:
                raise self._fail("probe (no marker after the scheduler query)", done)
            prefix_out, probe_out = head, tail
        observation = probe_mod.parse_probe(self.name, probe_out, self.transport.commands - before)
        return observation, prefix_out

    async def ship_code(self, commit: str, archive: Path) -> None:
        """One command when ``R/code/<commit>`` is complete; else two and a ``put``."""
        done = await self._run(scripts.ship_check_script(self.root, commit))
        if done.returncode != 0:
            raise self._fail("ship check", done)
        lines = done.stdout.split()
        if lines[:1] == ["present"]:
            return
        code_root = done.stdout.strip().splitlines()[-1]
        archive_name = f".{commit}.{secrets.token_hex(4)}.tar"
        await self.transport.put(Path(archive), posixpath.join(code_root, archive_name))
        script = scripts.ship_unpack_script(code_root, commit, archive_name, self.target.python)
        done = await self._run(script)
        if done.returncode != 0:
            raise self._fail(f"unpacking {commit[:10]}", done)

    async def env_check(self, action: CheckEnv, timeout: float) -> EnvVerdict:
        """One remote command (``envcheck``): code present, environment activates, Python and GPUs,
        then the dry run under ``timeout`` seconds. A failing check is an ``ENV_FAILED`` verdict;
        only a transport failure raises (the command is bounded by ``timeout`` + the command timeout)."""
        verdict = await self._env_check(action, timeout)
        if verdict.ready or not action.repair or not envrepair.repairable(verdict):
            return dataclasses.replace(verdict, repair=action.repaired) if action.repaired else verdict
        # the repair ladder (``env.repair``): once for this commit and env settings, then check again
        nonce = secrets.token_hex(6)
        reason = verdict.evidence[-1] if verdict.evidence else verdict.notes
        steps = len(envrepair.ladder(action, self.target))
        budget = steps * (action.repair.timeout_seconds + 15) + self.command_timeout
        done = await self._run(envrepair.repair_script(action, self.target, nonce), timeout=budget)
        record = envrepair.parse_repair(done.stdout, nonce, action, self.target, reason, verdict.checked_at)
        again = await self._env_check(action, timeout)
        return dataclasses.replace(again, repair=dataclasses.replace(record, ready=again.ready))

    async def _env_check(self, action: CheckEnv, timeout: float) -> EnvVerdict:
        nonce = secrets.token_hex(6)
        script = envcheck.env_check_script(action, self.target, self.project, timeout, nonce)
        done = await self._run(script, timeout=timeout + self.command_timeout)
        checked_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return envcheck.parse_env_check(done.stdout, nonce, action, self.target, checked_at, timeout, done.stderr)

    async def launch(self, action: Launch) -> Started:
        """Two commands: claim the run dir and write the wrapper, then start it once.

        A foreign token raises ``PermanentError(reason="ForeignRunDir")``. If the attempt was
        started before (a crash between start and record), its pid is adopted, not restarted:
        the result then has ``adopted=True``.
        """
        await self.prepare_run_dir(action)
        done = await self._run(
            wrapper.start_script(action.run_dir, self.start_wait), timeout=self.command_timeout + self.start_wait
        )
        if done.returncode != 0:
            raise self._fail("starting the wrapper", done)
        facts = wrapper.parse_key_values(done.stdout)
        pid = facts.get("pid", "")
        if not pid.isdigit() or not facts.get("start_time"):
            raise TemporaryError(f"{self.name}: {action.exp_id} attempt {action.attempt}: no pid recorded yet")
        return Started(
            host=facts.get("host", ""),
            pid=int(pid),
            start_time=facts["start_time"],
            adopted=facts.get("started") != "1",
        )

    async def prepare_run_dir(self, action: Launch) -> None:
        """One command: create the run dir, claim it with the token (a foreign token raises
        ``PermanentError(reason="ForeignRunDir")``) and write ``wrapper.sh`` (unless it ran)."""
        script = wrapper.wrapper_script(action, self.target.env, self.project).encode()
        take = None
        if action.lease is not None:
            take = scripts.lease_command(self.root, probe_mod.probe_name(), self.target.python, action.lease.document())
        done = await self._run(wrapper.prepare_script(action, len(script), take), stdin=script)
        if done.returncode == scripts.LEASE_REFUSED_EXIT:
            raise LeaseRefused(f"{self.name}: GPU lease refused: {done.stderr.strip()[-300:]}")
        if done.returncode == scripts.PROBE_MISSING_EXIT and action.lease is not None:
            raise TemporaryError(f"{self.name}: the probe (which takes GPU leases) is not installed yet")
        if done.returncode == wrapper.FOREIGN_TOKEN_EXIT:
            raise PermanentError(
                f"{self.name}: {action.run_dir} belongs to another launch ({done.stderr.strip()})",
                reason="ForeignRunDir",
            )
        if done.returncode != 0:
            raise self._fail("preparing the run dir", done)
        crash_point("after_run_dir")

    async def collect(self, action: Collect, dest: Path) -> None:
        """Copy the result file to ``dest`` through a temp file in the same dir (atomic rename):
        only a regular file of at most ``limits.result_bytes`` (``RefusedFile`` otherwise, and
        nothing is left at ``dest``)."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
        try:
            await self.transport.get(action.remote_path, tmp, max_bytes=self.limits.result_bytes)
            tmp.replace(dest)
        finally:
            tmp.unlink(missing_ok=True)

    async def remove_tree(self, path: str) -> bool:
        """Delete a dir under the target's root (a checkpoint); anything outside it is refused."""
        normal = posixpath.normpath(path)
        root = posixpath.normpath(self.root)
        if not normal.startswith(root.rstrip("/") + "/") or "/../" in f"{normal}/":
            raise PermanentError(f"{self.name}: refusing to delete {path!r}: not under the root {self.root!r}")
        q = shlex.quote
        done = await self._run(f"rm -rf -- {q(normal)} && [ ! -e {q(normal)} ] && echo gone")
        if done.returncode != 0:
            raise self._fail(f"deleting {path}", done)
        return done.stdout.strip().endswith("gone")

    async def read_log(self, run_dir: str, offset: int, limit: int = logread.MAX_CHUNK) -> logread.LogChunk:
        """One command: the run's ``stdout.log`` from ``offset`` (negative: from the end), safely
        (``backends.logread``), and its exit code once it ended."""
        done = await self._run(logread.read_command(run_dir, offset, limit, self.target.python))
        if done.returncode != 0:
            raise self._fail("reading the run's log", done)
        return logread.parse_chunk(done.stdout)

    async def run_in_code(self, code_dir: str, script: str, timeout: float | None = None) -> Completed:
        q = shlex.quote
        lines = [f"cd {q(code_dir)} || exit 1", *wrapper.activation_lines(self.target.env), script]
        return await self._run("\n".join(lines), timeout=timeout)

    async def kill(self, action: Kill) -> bool:
        """Kill the run's process group if (and only if) its leader is the process we started.

        True when nothing of the run is left (killed, already gone, or the pid now belongs to a
        foreign process, which is left alone); False when it survived SIGKILL or ownership
        could not be shown.
        """
        pid, start = (action.pid, action.start_time) if action.pid and action.start_time else (None, None)
        if action.tree:  # a run the seed started: its process and descendants, never a group
            script = scripts.kill_tree_script(pid, start, self.kill_grace)
        else:
            script = scripts.kill_script(action.run_dir, pid, start, self.kill_grace)
        done = await self._run(script, timeout=self.command_timeout + self.kill_grace + 10)
        if done.returncode != 0:
            raise self._fail("kill", done)
        word = (done.stdout.split() or ["?"])[-1]
        return word in ("gone", "reused")


def _size(done: Completed) -> int:
    """The bytes of a command's stdout and stderr (UTF-8, as decoded: exact for the probe's ASCII)."""
    return len(done.stdout.encode()) + len(done.stderr.encode())
