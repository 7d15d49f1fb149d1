"""``ShellRunner.env_check`` over every transport (local, real sshd), and its pure builder/parser.

The code dir is made by hand (``.complete`` written last, as ``ship_code`` does) and holds the
example project's ``train.py`` plus tiny scripts; ``nvidia-smi`` is faked through the target's
setup lines, so the same fake works over SSH. Tests poll with deadlines; nothing sleeps a fixed time.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.backends import envcheck
from reconciler.backends.local import LocalTransport
from reconciler.backends.shell import ShellRunner
from reconciler.errors import TransportError
from reconciler.model.actions import CheckEnv
from reconciler.model.config import EnvActivation, GpuPolicy, Target, TargetKind
from reconciler.model.env import ENV_FAILED, ENV_READY, EnvVerdict
from reconciler.runtime.bundle import BUNDLE_DIR, write_bundle
from tests.backends.helpers import PROJECT, Backend, run, wait_until

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "project" / "experiments" / "scripts"
SMI_DATA = Path(__file__).parent.parent / "data" / "nvidia-smi"
COMMIT = "feedc0de"
TRAIN = "python3 experiments/scripts/train.py --method logreg --dataset blobs --seed 0 --dry-run"
ENV_SCRIPT = """\
import os, sys
want = {"CUDA_VISIBLE_DEVICES": "", "RECONCILER_DRY_RUN": "1", "RECONCILER_PROJECT": "%s"}
bad = {k: os.environ.get(k) for k, v in want.items() if os.environ.get(k) != v}
if bad or "EXP_ID" in os.environ or sys.argv[1:] != ["--as-written"]:
    sys.exit(f"wrong environment: {bad} {sys.argv}")
print("environment as expected")
"""


def code_dir(root: Path, commit: str = COMMIT) -> Path:
    """A shipped commit: the example scripts, a checker of the dry run's environment, ``.complete``."""
    code = root / "code" / commit
    shutil.copytree(EXAMPLE, code / "experiments" / "scripts")
    (code / "envcheck.py").write_text(ENV_SCRIPT % PROJECT)
    write_bundle(code / BUNDLE_DIR)
    (code / ".complete").write_text("")
    for path in (root, root / "code"):
        path.chmod(0o777)
    return code


def action(root: Path, command: str = TRAIN, commit: str = COMMIT) -> CheckEnv:
    return CheckEnv("t", commit, str(root / "code" / commit), command, "hash0")


def check(backend: Backend, act: CheckEnv, timeout: float = 60.0, **target: Any) -> tuple[EnvVerdict, int]:
    """The verdict, and how many remote commands it took."""

    async def scenario() -> tuple[EnvVerdict, int]:
        runner = await backend.runner(**target)
        before = runner.transport.commands
        verdict = await runner.env_check(act, timeout)
        return verdict, runner.transport.commands - before

    return run(scenario())


def test_a_ready_environment(backend: Backend) -> None:
    root = backend.make_root()
    code_dir(root)
    verdict, commands = check(backend, action(root))
    assert commands == 1
    assert verdict.status == ENV_READY and verdict.ready and verdict.dry_run_passed, verdict
    assert verdict.target == f"t-{backend.kind}" and verdict.checked_commit == COMMIT
    assert verdict.env_hash == "hash0" and verdict.remote_project_dir == str(root / "code" / COMMIT)
    assert verdict.dry_run_command == TRAIN  # the config's env_check.command, as written
    assert verdict.python and verdict.python[0].isdigit() and verdict.host
    assert verdict.evidence == () and verdict.free_disk_gb is not None
    checked = datetime.fromisoformat(verdict.checked_at)
    assert checked.utcoffset() is not None and checked.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert EnvVerdict.from_dict(verdict.to_dict()) == verdict


def test_the_check_command_runs_as_written_without_gpus_or_an_experiment(backend: Backend) -> None:
    root = backend.make_root()
    code_dir(root)
    verdict, _ = check(backend, action(root, "python3 envcheck.py --as-written"))
    assert verdict.ready, verdict.evidence


def test_the_neutral_check_runs_no_command(backend: Backend) -> None:
    root = backend.make_root()
    code_dir(root)
    verdict, commands = check(backend, action(root, ""))
    assert commands == 1
    assert verdict.ready and verdict.python and verdict.dry_run_command is None and not verdict.dry_run_passed


def test_a_missing_import_fails_with_the_error_line(backend: Backend) -> None:
    root = backend.make_root()
    code_dir(root)
    verdict, _ = check(backend, action(root, TRAIN + " --fail-import"))
    assert verdict.status == ENV_FAILED and not verdict.dry_run_passed
    assert verdict.evidence[-1] == "ModuleNotFoundError: No module named 'missing_pkg'"
    assert any(line.startswith("Traceback") for line in verdict.evidence)
    assert verdict.notes.startswith("ModuleNotFoundError")
    assert verdict.python is not None  # what was learnt before the failure is kept


def test_a_hanging_dry_run_fails_within_the_limit(backend: Backend) -> None:
    root = backend.make_root()
    code_dir(root)
    marker = f"{uuid.uuid4().hex[:8]}"
    command = f"python3 -c 'import time; print(\"loading\", flush=True); time.sleep(300)' {marker}"
    started = time.monotonic()
    verdict, _ = check(backend, action(root, command), timeout=2)
    assert time.monotonic() - started < 30
    assert verdict.status == ENV_FAILED and not verdict.dry_run_passed
    assert verdict.evidence[-1] == "env_check.command did not finish within 2 s"
    assert "loading" in verdict.evidence
    wait_until(lambda: not _processes_with(marker), "the hanging dry run to be gone", deadline=20)


def test_code_that_was_not_shipped_fails(backend: Backend) -> None:
    root = backend.make_root()
    code_dir(root)
    partial = root / "code" / "notthere"
    partial.mkdir()
    partial.chmod(0o777)  # unpacked but without .complete counts as not there
    verdict, _ = check(backend, action(root, commit="notthere"))
    assert verdict.status == ENV_FAILED
    assert verdict.notes.startswith("code notthere not on the target")
    assert verdict.free_disk_gb is not None and verdict.host


def test_a_venv_that_cannot_be_activated_fails_with_the_shell_error(backend: Backend) -> None:
    root = backend.make_root()
    code_dir(root)
    env = EnvActivation(venv="no-such-venv")
    verdict, _ = check(backend, action(root), env=env)
    assert verdict.status == ENV_FAILED
    assert verdict.notes.startswith("environment activation failed")
    assert any("no-such-venv" in line for line in verdict.evidence)


def test_fake_nvidia_smi_gives_gpus_minus_the_blacklist(backend: Backend) -> None:
    root = backend.make_root()
    code_dir(root)
    bin_dir = root / "bin"
    bin_dir.mkdir()
    shutil.copyfile(SMI_DATA / "gpus_nounits.txt", bin_dir / "gpus.txt")
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f'#!/bin/sh\ncase "$*" in *--query-gpu=*) cat {bin_dir}/gpus.txt ;; *) exit 2 ;; esac\n')
    smi.chmod(0o755)
    bin_dir.chmod(0o755)
    env = EnvActivation(setup=(f'export PATH={bin_dir}:"$PATH"',))
    # GPU 1 blacklisted by index, GPU 2 (an RTX A6000) by the default model blacklist.
    verdict, _ = check(backend, action(root), env=env, gpus=GpuPolicy(blacklist=(1,)))
    assert verdict.ready, verdict.evidence
    assert verdict.available_gpus == (0,)


def test_a_transport_error_propagates(tmp_path: Path) -> None:
    root = tmp_path / "root"
    code_dir(root)

    async def scenario() -> None:
        transport = LocalTransport()
        await transport.close()
        runner = ShellRunner(Target("t", TargetKind.LOCAL, str(root)), transport, None, PROJECT)
        await runner.env_check(action(root), 10)

    with pytest.raises(TransportError):
        run(scenario())


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline and b"time.sleep" in cmdline:
                found.append(int(entry.name))
    return found


# The pure parts: the builder quotes and activates like the wrapper; the parser picks reasons.


def test_the_script_activates_like_the_wrapper_and_quotes_everything() -> None:
    env = EnvActivation(conda="my env", venv=".venv", setup=("module load cuda/12.1",), variables=(("A", "x y"),))
    target = Target("t", TargetKind.SSH, "~/proj", env=env)
    act = CheckEnv("t", "c1", "/r/code/c1", "python3 t.py --x 'a b'", "h")
    script = envcheck.env_check_script(act, target, "demo", 7.5, "n0nce")
    assert "module load cuda/12.1\n    export A='x y'\n    . .venv/bin/activate || exit 113" in script
    assert "\"${CONDA_EXE:-conda}\" run -n 'my env' --no-capture-output true" in script
    assert "_rc_lim 8 \"${CONDA_EXE:-conda}\" run -n 'my env' --no-capture-output sh -c " in script
    assert "sh -c 'python3 t.py --x '\"'\"'a b'\"'\"''\n" in script  # as written: no flag added
    assert "EXP_ID" not in script  # the target's check, no experiment's
    assert "export CUDA_VISIBLE_DEVICES=''" in script and "export RECONCILER_DRY_RUN=1" in script
    home = envcheck.env_check_script(CheckEnv("t", "c1", "~/proj/code/c1", "x", "h"), target, "demo", 1, "n")
    assert '_rc_d="$HOME"/proj/code/c1' in home


def _out(*lines: str) -> str:
    """Script output: marker lines (nonce ``n``), and output lines given with a leading ``:``."""
    return "\n".join(line[1:] if line.startswith(":") else f"{envcheck.MARK}-n {line}" for line in lines)


def test_the_parser_keeps_the_first_failing_step_and_what_was_learnt() -> None:
    target = Target("t", TargetKind.LOCAL, "/r", gpus=GpuPolicy(blacklist=(0,)))
    act = CheckEnv("t", "c1", "/r/code/c1", "python3 t.py --dry-run", "h")
    gpus = (SMI_DATA / "gpus_nounits.txt").read_text().splitlines()
    stdout = _out(
        "host gpu-a",
        "disk_kb 2097152",
        "activated",
        "step python 0",
        ":Python 3.10.4",
        "step gpus 0",
        *(":" + line for line in gpus),
        "step check 2",
        ":usage: t.py [-h]",
        ":t.py: error: unrecognized arguments: --dry-run",
    )
    verdict = envcheck.parse_env_check(stdout, "n", act, target, "2026-01-01T00:00:00+00:00", 5)
    assert verdict.status == ENV_FAILED and verdict.host == "gpu-a" and verdict.free_disk_gb == 2.0
    assert verdict.python == "3.10.4" and verdict.available_gpus == (1,)
    assert verdict.evidence == ("usage: t.py [-h]", "t.py: error: unrecognized arguments: --dry-run")
    nothing = envcheck.parse_env_check("sh: syntax error", "n", act, target, "x", 5, stderr="boom")
    assert nothing.status == ENV_FAILED and nothing.evidence[-1] == "the environment check did not run"
    assert "boom" in nothing.evidence


def test_reason_line_prefers_the_exception_line() -> None:
    lines = ["Traceback (most recent call last):", '  raise ValueError("x")', "ValueError: x", "exiting"]
    assert envcheck.reason_line(lines) == "ValueError: x"
    assert envcheck.reason_line(["a", "b", ""]) == "b"
    assert envcheck.reason_line([]) is None
