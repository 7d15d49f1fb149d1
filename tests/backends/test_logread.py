"""``ShellRunner.read_log`` over every transport (local, real sshd): a tail, reads from an offset
(what ``reconcile logs -f`` does), the exit code once the run ended, and refusal of a log that is a
symlink (a job may point it at ``/etc/passwd``) or a file that is not the target user's."""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.backends.logread import LogChunk
from tests.backends.helpers import Backend, run


def _run_dir(backend: Backend) -> Path:
    root = backend.make_root()
    run_dir = root / "runs" / "job" / "1"
    run_dir.mkdir(parents=True)
    for path in (root / "runs", root / "runs" / "job", run_dir):
        path.chmod(0o777)
    return run_dir


def _read(backend: Backend, run_dir: Path, offset: int, limit: int = 1 << 20) -> LogChunk:
    async def scenario() -> LogChunk:
        runner = await backend.runner()
        return await runner.read_log(str(run_dir), offset, limit)

    return run(scenario())


def test_tail_offsets_and_the_exit_code(backend: Backend) -> None:
    run_dir = _run_dir(backend)
    log = run_dir / "stdout.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    backend.hand_over()
    tail = _read(backend, run_dir, -40)
    assert tail.size == log.stat().st_size and tail.end == tail.size
    assert tail.text.splitlines()[-1] == "line 99" and tail.exit_code is None
    assert not tail.refused and not tail.missing
    head = _read(backend, run_dir, 0, limit=14)
    assert head.text == "line 0\nline 1\n" and head.end == 14
    with log.open("a") as f:  # the job writes more; then ends
        f.write("line 100\n")
    (run_dir / "exit_code").write_text("0\n")
    backend.hand_over()
    more = _read(backend, run_dir, tail.end)
    assert more.text == "line 100\n" and more.exit_code == 0


def test_a_symlinked_log_is_refused_and_never_read(backend: Backend) -> None:
    run_dir = _run_dir(backend)
    os.symlink("/etc/passwd", run_dir / "stdout.log")
    backend.hand_over()
    chunk = _read(backend, run_dir, -1000)
    assert chunk.refused and chunk.text == "" and "root:" not in chunk.text


def test_a_missing_log_is_said(backend: Backend) -> None:
    run_dir = _run_dir(backend)
    chunk = _read(backend, run_dir, -1000)
    assert chunk.missing and not chunk.refused and chunk.text == ""
