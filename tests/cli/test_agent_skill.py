"""The agent skill (``skills/reconcile/SKILL.md``), followed to the letter: the example project is
driven only through the commands the skill names (``reconcile`` subcommands and ``git add``/``git
commit``), parsing their JSON, through the loop it teaches: look, write a dispatch file, validate,
commit, wait (driving the passes), read a failure and its output, decide, wait again."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.example.tools import REPO, copy_example, git_env, tool
from tests.projectkit import commit_project

SKILL = REPO / "skills" / "reconcile" / "SKILL.md"


def named_commands() -> set[str]:
    """The ``reconcile`` subcommands (and ``git`` verbs) the skill's code blocks use."""
    text = SKILL.read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    names: set[str] = set()
    for block in blocks:
        for line in block.splitlines():
            words = shlex.split(line.split("#", 1)[0]) if line.strip() else []
            for i, word in enumerate(words):
                if word in ("reconcile", "git") and i + 1 < len(words):
                    names.add(f"{word} {words[i + 1]}")
    return names


class Agent:
    """Runs only what the skill names; records what it ran."""

    def __init__(self, project: Path, env: dict[str, str]) -> None:
        self.project, self.env = project, env
        self.allowed = named_commands()
        self.ran: list[str] = []

    def run(self, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        name = f"{args[0]} {args[1]}"
        assert name in self.allowed, f"the skill does not name {name!r} (it names {sorted(self.allowed)})"
        self.ran.append(name)
        argv = [tool("reconcile") if args[0] == "reconcile" else "git", *args[1:]]
        done = subprocess.run(argv, cwd=self.project, env=self.env, capture_output=True, text=True, timeout=300)
        assert done.returncode in ok, f"{' '.join(args)} exited {done.returncode}: {done.stdout}{done.stderr}"
        return done

    def json(self, *args: str, ok: tuple[int, ...] = (0,)) -> Any:
        return json.loads(self.run(*args, "--json", ok=ok).stdout)


def test_the_skill_names_the_loop_and_forbids_the_owned_files() -> None:
    names = named_commands()
    for command in ("status", "plan", "validate", "wait", "logs", "log", "resolve"):
        assert f"reconcile {command}" in names
    assert {"git add", "git commit"} <= names
    text = SKILL.read_text()
    for owned in ("dispatch/state.json", "progress/*", "experiments/results/*", "experiments/vram.json"):
        assert owned in text


def test_an_agent_drives_the_example_through_the_skill(tmp_path: Path) -> None:
    env = git_env(tmp_path)
    project = copy_example(tmp_path / "project")
    commit_project(project, {}, message="the example")
    agent = Agent(project, env)

    # look
    assert agent.json("reconcile", "status") == []
    plan = agent.json("reconcile", "plan", ok=(1,))
    assert any(a["kind"] == "launch" for a in plan["actions"])

    # write a sweep (one experiment fails at once: a bad learning rate), validate, commit
    sweep = {
        "version": 1,
        "experiments": [
            {
                "id": "agent_sweep",
                "command": "python3 experiments/scripts/train.py --method logreg --dataset moons --seed {seed}"
                " --exp-id {exp_id} --group main --result-file {result_file}",
                "seeds": [0, 1],
                "method": "logreg",
                "dataset": "moons",
                "group": "main",
                "targets": ["local"],
                "expected_duration_hours": 0.01,
            },
            {
                "id": "agent_bad",
                "command": "python3 -c 'import sys; print(\"ValueError: learning rate must be positive\"); sys.exit(3)'"
                " {result_file}",
                "targets": ["local"],
                "max_retries": 0,
                "expected_duration_hours": 0.01,
            },
        ],
    }
    (project / "dispatch" / "agent.yaml").write_text(yaml.safe_dump(sweep, sort_keys=False))
    assert agent.json("reconcile", "validate") == {"valid": True, "problems": []}
    agent.run("git", "add", "dispatch/agent.yaml")
    agent.run("git", "commit", "-m", "dispatch: agent sweep")

    # wait for the sweep (driving the passes: nothing else runs them here)
    done = agent.json("reconcile", "wait", "agent_sweep_*", "--drive", "--interval", "0.5", "--timeout", "240")
    assert done["outcome"] == "reached" and done["experiments"] == {"agent_sweep_s0": "done", "agent_sweep_s1": "done"}
    finished = agent.json("reconcile", "status", "--status", "done", "agent_sweep_*")
    assert all("accuracy" in e["results"] for e in finished)

    # the bad one: the wait stops with exit 1, the status says why, the logs show it
    bad = agent.json("reconcile", "wait", "agent_bad", "--drive", "--interval", "0.5", "--timeout", "240", ok=(1,))
    assert bad["outcome"] == "failed" and bad["failed"] == ["agent_bad"]
    (entry,) = agent.json("reconcile", "status", "--status", "failed", ok=(1,))
    assert entry["id"] == "agent_bad" and entry["escalation"]["status"] == "open"
    logs = agent.json("reconcile", "logs", "agent_bad")
    assert logs["exit_code"] == 3 and "ValueError: learning rate must be positive" in logs["lines"]
    history = agent.json("reconcile", "log", "agent_bad")
    assert history["transitions"][-1]["to"] == "failed"

    # decide: cancel it; the next pass applies the decision and closes the escalation
    decided = agent.json("reconcile", "resolve", "agent_bad", "--cancel", "--note", "bad learning rate")
    assert decided["decision"]["action"] == "cancel"
    settled = agent.json(
        "reconcile",
        "wait",
        "agent_bad",
        "--for",
        "settled",
        "--drive",
        "--interval",
        "0.5",
        "--timeout",
        "120",
        ok=(1,),
    )
    assert settled["experiments"] == {"agent_bad": "cancelled"}
    (entry,) = agent.json("reconcile", "status", "agent_bad")
    assert entry["escalation"]["status"] == "closed"
    assert set(agent.ran) <= agent.allowed
