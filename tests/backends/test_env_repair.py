"""The environment repair ladder (``env.repair``) in ``ShellRunner.env_check`` over every transport
(local, real sshd), and its pure parts: which failures a ladder may fix, the default ladder of
each kind of environment. The default ladder runs for real: ``python3 -m venv`` and ``pip install
-r requirements.txt`` of a wheel shipped with the code (offline, ``--no-index``)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from reconciler.backends import envrepair
from reconciler.model.actions import CheckEnv
from reconciler.model.config import EnvActivation, EnvRepair
from reconciler.model.env import ENV_FAILED, ENV_READY, EnvVerdict, RepairRecord
from tests.backends.helpers import Backend, run
from tests.backends.test_env_check import code_dir

CHECK = "python3 -c 'import tinypkg; print(tinypkg.VALUE)'"


def _verdict(*evidence: str, ready: bool = False) -> EnvVerdict:
    status = ENV_READY if ready else ENV_FAILED
    return EnvVerdict("t", status, "c", "2026-12-06T00:00:00+00:00", "h", evidence=evidence)


@pytest.mark.parametrize(
    ("evidence", "fixable"),
    [
        ("ModuleNotFoundError: No module named 'torch'", True),
        ("ImportError: cannot import name 'x' from 'y'", True),
        ("environment activation failed (exit 113)", True),
        ("conda env lab does not run", True),
        ("EnvironmentLocationNotFound: Not a conda environment: /opt/envs/lab", True),
        ("python3 not found on the target", True),
        ("code feedc0de not on the target (/r/code/feedc0de/.complete missing)", False),
        ("env_check.command did not finish within 300 s", False),
        ("RuntimeError: CUDA error: no kernel image is available", False),
    ],
)
def test_only_a_missing_environment_or_module_is_repaired(evidence: str, fixable: bool) -> None:
    assert envrepair.repairable(_verdict(evidence)) is fixable
    assert not envrepair.repairable(_verdict(evidence, ready=True))


def test_the_default_ladder_follows_the_kind_of_environment() -> None:
    conda = envrepair.default_ladder(EnvActivation(conda="lab env"), "python3")
    assert "env update -n 'lab env' -f environment.yml --prune" in conda[0]
    assert "env create -n 'lab env' -f environment.yml" in conda[0]
    assert conda[1].endswith("run -n 'lab env' python -m pip install -r requirements.txt; fi")
    venv = envrepair.default_ladder(EnvActivation(venv=".venv"), "/opt/py/bin/python3 -I")
    assert venv == (
        "[ -x .venv/bin/python ] || /opt/py/bin/python3 -I -m venv .venv",
        "if [ -f requirements.txt ]; then .venv/bin/python -m pip install -r requirements.txt; fi",
    )
    (plain,) = envrepair.default_ladder(EnvActivation(), "python3")
    assert plain == "if [ -f requirements.txt ]; then python3 -m pip install -r requirements.txt; fi"


def _wheel(dest: Path) -> str:
    """A pure-Python wheel ``tinypkg`` 0.1 (no build step, so pip installs it offline)."""
    files = {
        "tinypkg/__init__.py": "VALUE = 'repaired'\n",
        "tinypkg-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinypkg\nVersion: 0.1\n",
        "tinypkg-0.1.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    record.append("tinypkg-0.1.dist-info/RECORD,,")
    files["tinypkg-0.1.dist-info/RECORD"] = "\n".join(record) + "\n"
    name = "tinypkg-0.1-py3-none-any.whl"
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest / name, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return name


@pytest.mark.slow  # seconds per test: in the full tier (pytest -q -m ""), not the default
def test_the_default_ladder_makes_the_venv_and_installs_the_requirements(backend: Backend) -> None:
    root = backend.make_root()
    code = code_dir(root)
    wheel = _wheel(code / "wheels")
    (code / "requirements.txt").write_text(f"--no-index\n./wheels/{wheel}\n")
    for path in (code, code / "wheels"):
        path.chmod(0o777)
    env = EnvActivation(venv=".venv-exp", variables=(("PIP_DISABLE_PIP_VERSION_CHECK", "1"),), repair=EnvRepair())
    act = CheckEnv("t", "feedc0de", str(code), CHECK, "hash0", repair=env.repair)

    async def scenario() -> EnvVerdict:
        runner = await backend.runner(env=env)
        return await runner.env_check(act, 120.0)

    verdict = run(scenario())
    assert verdict.status == ENV_READY, verdict
    record = verdict.repair
    assert isinstance(record, RepairRecord) and record.ready
    assert record.reason.startswith("environment activation failed (exit ")  # dash's `.` of a missing file: 2
    assert [step.exit_code for step in record.steps] == [0, 0]
    assert record.steps[0].command == "[ -x .venv-exp/bin/python ] || python3 -m venv .venv-exp"
    assert any("Successfully installed tinypkg-0.1" in line for line in record.steps[1].output)
    assert (code / ".venv-exp" / "bin" / "python").exists()

    # the next check of the same commit carries the record and repairs nothing
    again = CheckEnv("t", "feedc0de", str(code), CHECK, "hash0", repaired=record)

    async def recheck() -> EnvVerdict:
        runner = await backend.runner(env=env)
        return await runner.env_check(again, 120.0)

    second = run(recheck())
    assert second.status == ENV_READY and second.repair == record


def test_without_repair_a_failing_check_is_only_reported(backend: Backend) -> None:
    root = backend.make_root()
    code = code_dir(root)
    act = CheckEnv("t", "feedc0de", str(code), CHECK, "hash0")

    async def scenario() -> EnvVerdict:
        runner = await backend.runner(env=EnvActivation(venv=".venv-exp"))
        return await runner.env_check(act, 60.0)

    verdict = run(scenario())
    assert verdict.status == ENV_FAILED and verdict.repair is None
    assert not (code / ".venv-exp").exists()
