"""The pure script builders: quoting, environment order, refusals. No process runs here except
``sh -n`` (syntax check) and tiny ``sh -c`` evaluations of single words."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reconciler.backends import scripts, wrapper
from reconciler.errors import InvalidTarget, PermanentError
from reconciler.model.actions import Launch
from reconciler.model.config import EnvActivation

NASTY = 'it\'s $HOME `id` "q" a\\b'


def launch(**kw: object) -> Launch:
    fields: dict[str, object] = {
        "exp_id": "A_s0",
        "target": "t",
        "attempt": 1,
        "command": "python train.py --out /r/runs/A_s0/1/experiments/results/A_s0.csv",
        "run_dir": "/r/runs/A_s0/1",
        "token": "tok123",
        "code_dir": "/r/code/abc",
        "commit": "abc",
        "result_file": "experiments/results/A_s0.csv",
        "checkpoint_dir": "/r/checkpoints/A_s0",
    }
    fields.update(kw)
    return Launch(**fields)  # type: ignore[arg-type]


def sh_word(word: str, home: str = "/home/u") -> str:
    out = subprocess.run(["sh", "-c", f"printf %s {word}"], capture_output=True, text=True, env={"HOME": home})
    return out.stdout


def syntax_ok(script: str) -> bool:
    return subprocess.run(["sh", "-n", "-c", script], capture_output=True).returncode == 0


@pytest.mark.parametrize(
    ("root", "expanded"),
    [
        ("/abs/p q", "/abs/p q"),
        ("~", "/home/u"),
        ("~/exp runs", "/home/u/exp runs"),
        ("rel/dir", "/home/u/rel/dir"),
        ("~root/x", "/root/x"),
    ],
)
def test_root_expr_expands_like_the_probe(root: str, expanded: str) -> None:
    assert sh_word(scripts.root_expr(root)) == expanded


def test_root_expr_refuses_odd_tilde() -> None:
    with pytest.raises(InvalidTarget):
        scripts.root_expr("~$(reboot)/x")
    with pytest.raises(InvalidTarget):
        scripts.root_expr("")


def test_every_script_is_valid_sh() -> None:
    action = launch(command=NASTY, env=(("X", NASTY),))
    env = EnvActivation(conda="my env", setup=("module load cuda/12.1",), variables=(("V", NASTY),))
    for script in (
        wrapper.wrapper_script(action, env, "proj"),
        wrapper.prepare_script(action, 1234),
        scripts.receive_stdin("job.sh", 99),
        wrapper.start_script(action.run_dir),
        scripts.probe_command("~/p", "probe-x.py", "python3 -I"),
        scripts.probe_command("/p", "probe-x.py", "python3", install_from=".probe-x.py.1.tmp"),
        scripts.ship_check_script("~/p", "abc"),
        scripts.ship_unpack_script("/p/code", "abc", ".abc.1.tar", "python3"),
        scripts.kill_script(action.run_dir, 42, "123", 5.0),
        scripts.kill_script(action.run_dir, None, None, 5.0),
    ):
        assert syntax_ok(script), script


def test_job_environment_order_and_quoting() -> None:
    env = EnvActivation(setup=("module load cuda",), variables=(("HF_HOME", "/data/hf"),), venv=".venv")
    action = launch(gpus=(0, 2), env=(("SEED", "1 2"),))
    lines = wrapper.job_lines(action, env, "proj")
    assert lines[0] == "cd /r/code/abc || exit 112"
    assert lines[1] == "module load cuda"
    assert lines.index("export HF_HOME=/data/hf") < lines.index(". .venv/bin/activate || exit 113")
    assert "export SEED='1 2'" in lines
    ours = lines.index("export EXP_ID=A_s0")
    assert lines.index("export SEED='1 2'") < ours  # ours come last: a spec cannot override them
    assert "export CUDA_VISIBLE_DEVICES=0,2" in lines
    assert "export RECONCILER_RUN_DIR=/r/runs/A_s0/1" in lines
    assert "mkdir -p /r/runs/A_s0/1/experiments/results /r/checkpoints/A_s0 || exit 114" in lines
    assert lines[-1] == "exec sh -c 'python train.py --out /r/runs/A_s0/1/experiments/results/A_s0.csv'"


def test_no_gpus_leaves_cuda_visible_devices_unset() -> None:
    assert not any("CUDA_VISIBLE_DEVICES" in line for line in wrapper.job_lines(launch(), EnvActivation(), "p"))


def test_conda_wraps_the_command_after_the_exports() -> None:
    lines = wrapper.job_lines(launch(gpus=(3,)), EnvActivation(conda="torch"), "p")
    assert lines.index("export CUDA_VISIBLE_DEVICES=3") < len(lines) - 1
    assert lines[-1].startswith('exec "${CONDA_EXE:-conda}" run -n torch --no-capture-output sh -c ')


def test_exports_round_trip_through_sh() -> None:
    line = wrapper._exports((("X", NASTY),))[0]
    out = subprocess.run(["sh", "-c", f'{line}; printf %s "$X"'], capture_output=True, text=True)
    assert out.stdout == NASTY


@pytest.mark.parametrize(
    "bad",
    [
        {"run_dir": "runs/A/1"},
        {"code_dir": "code/x"},
        {"token": ""},
        {"token": "a b"},
        {"result_file": "../../etc/passwd"},
        {"result_file": "/abs.csv"},
        {"env": (("1BAD", "x"),)},
        {"env": (("EXP_ID", "other"),)},
    ],
)
def test_bad_launches_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(PermanentError):
        wrapper.wrapper_script(launch(**bad), EnvActivation(), "p")


def test_result_path_is_inside_the_run_dir() -> None:
    assert wrapper.result_path(launch()) == "/r/runs/A_s0/1/experiments/results/A_s0.csv"


def test_commit_names_are_checked() -> None:
    with pytest.raises(InvalidTarget):
        scripts.ship_check_script("/r", "../x")
    with pytest.raises(InvalidTarget):
        scripts.ship_check_script("/r", ".hidden")


def test_parse_key_values() -> None:
    text = "motd\npid=42\nstart_time= 9137 \nhost=gpu-a\nnot a pair\nstarted=1\n"
    assert wrapper.parse_key_values(text) == {"pid": "42", "start_time": "9137", "host": "gpu-a", "started": "1"}


def test_python_words() -> None:
    assert scripts.python_words("'/opt/my py/bin/python3' -I") == "'/opt/my py/bin/python3' -I"
    assert scripts.python_words("/usr/bin/python3") == "/usr/bin/python3"
    assert scripts.python_words("") == "python3"


def test_a_wrapper_cut_short_is_never_installed(tmp_path: Path) -> None:
    """The launch's first command installs ``wrapper.sh`` only when every announced byte came."""
    run_dir = tmp_path / "runs" / "A_s0" / "1"
    action = launch(run_dir=str(run_dir))
    body = wrapper.wrapper_script(action, EnvActivation(), "proj").encode()
    script = wrapper.prepare_script(action, len(body))
    cut = subprocess.run(["sh", "-c", script], input=body[: len(body) // 2], capture_output=True, timeout=30)
    assert cut.returncode == 1 and b"incomplete input" in cut.stderr
    assert not (run_dir / "wrapper.sh").exists() and not list(run_dir.glob(".wrapper.sh.*"))
    whole = subprocess.run(["sh", "-c", script], input=body, capture_output=True, timeout=30)
    assert whole.returncode == 0 and whole.stdout.strip() == b"ready", whole.stderr
    assert (run_dir / "wrapper.sh").read_bytes() == body
