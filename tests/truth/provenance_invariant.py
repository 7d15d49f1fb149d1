"""Invariant (b) of issue 14, as a pure checker the chaos suite (and any test) can call.

Every ``done`` entry's recorded command, commit and target must be those of the attempt that
produced its result (design invariant 9, provenance). ``provenance_violations`` reads:

* ``state``: the committed ``dispatch/state.json`` (its text, the parsed dict, or a path);
* ``run_roots`` (optional): target name -> that target's root on this machine (the directory that
  holds ``runs/<exp_id>/<attempt>/``). The attempt's run dir holds what ran: ``token`` (which
  attempt it is), ``wrapper.sh`` (``cd <root>/code/<commit>``, ``CUDA_VISIBLE_DEVICES``, and
  ``exec ... sh -c <command>``);
* ``results_dir`` (optional): the project's ``experiments/results/`` (each row names its run).

It returns one line per problem (empty: the invariant holds). Nothing is written; no clock.

What is compared, for each ``done`` entry and its current attempt (``attempt``):

1. the attempt is recorded, and the entry's ``target`` and ``git_commit`` are the attempt's,
   its ``host`` the attempt's target (the seed's meaning; the machine is the attempt's ``host``)
   and its ``gpu`` the attempt's first GPU;
2. the entry's ``command`` (the template, placeholders unfilled) renders to the attempt's command
   (placeholders match any text) and, when the entry is not ``OutOfSync``, nothing says the spec
   changed: ``OutOfSync`` absent means ``spec_hash`` is the hash the run was launched with, which
   only the reconciler can tell, so this checker leaves ``spec_hash`` to the planner's tests;
3. with ``run_roots``: the run dir exists under the attempt's target's root, its ``token`` is the
   attempt's, and ``wrapper.sh`` ran the attempt's command, from ``code/<git_commit>``, on the
   attempt's GPUs;
4. with ``results_dir``: the result rows name the entry (``exp_id``) and, where a row names a host
   and the attempt recorded one, the same host.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PLACEHOLDER = re.compile(r"\\\{(seed|exp_id|checkpoint_dir|result_file)\\\}")


def provenance_violations(
    state: str | Path | Mapping[str, Any],
    run_roots: Mapping[str, Path] | None = None,
    results_dir: Path | None = None,
) -> list[str]:
    doc = _load(state)
    out: list[str] = []
    for entry in doc.get("experiments") or ():
        if entry.get("status") == "done":
            out += [f"{entry.get('id')}: {p}" for p in _entry_problems(entry, run_roots, results_dir)]
    return out


def _load(state: str | Path | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(state, Mapping):
        return state
    if isinstance(state, Path):
        state = state.read_text(encoding="utf-8")
    loaded: Mapping[str, Any] = json.loads(state)
    return loaded


def _entry_problems(entry: Mapping[str, Any], run_roots: Mapping[str, Path] | None, results: Path | None) -> list[str]:
    n = entry.get("attempt")
    attempt = next((a for a in entry.get("attempts") or () if a.get("n") == n), None)
    if attempt is None:
        return [f"done, but attempt {n} (the one that produced its result) is not recorded"]
    out: list[str] = []
    gpus = attempt.get("gpus") or []
    expected = {
        "target": attempt.get("target"),
        "git_commit": attempt.get("git_commit"),
        "host": attempt.get("target"),  # the target's name, as the seed's host (the machine: the attempt's host)
        "gpu": gpus[0] if gpus else None,
    }
    for field, value in expected.items():
        if entry.get(field) != value:
            out.append(f"{field} {entry.get(field)!r} is not attempt {n}'s {value!r}")
    if not renders_to(entry.get("command") or "", attempt.get("command") or ""):
        out.append(f"command {entry.get('command')!r} is not what attempt {n} ran: {attempt.get('command')!r}")
    if run_roots is not None:
        out += _run_dir_problems(entry, attempt, run_roots)
    if results is not None:
        out += _result_problems(entry, attempt, results)
    return out


def renders_to(template: str, command: str) -> bool:
    """``template`` (placeholders ``{seed}``, ``{exp_id}``, … unfilled) can render to ``command``."""
    pattern = PLACEHOLDER.sub(".*?", re.escape(template))
    return re.fullmatch(pattern, command, flags=re.S) is not None


def wrapper_facts(text: str) -> dict[str, Any]:
    """What a ``wrapper.sh`` ran: ``code_dir``, ``gpus`` and ``command`` (from its job lines)."""
    facts: dict[str, Any] = {"gpus": []}
    for line in text.splitlines():
        words = _words(line.strip())
        if len(words) >= 2 and words[0] == "cd" and "/code/" in words[1]:
            facts["code_dir"] = words[1]
        elif words[:1] == ["export"] and len(words) == 2 and words[1].startswith("CUDA_VISIBLE_DEVICES="):
            value = words[1].split("=", 1)[1]
            facts["gpus"] = [int(g) for g in value.split(",") if g.strip().isdigit()]
        elif words[:1] == ["exec"] and "-c" in words:
            facts["command"] = words[words.index("-c") + 1] if words.index("-c") + 1 < len(words) else ""
    return facts


def _words(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError:
        return []


def _run_dir_problems(entry: Mapping[str, Any], attempt: Mapping[str, Any], roots: Mapping[str, Path]) -> list[str]:
    target = attempt.get("target")
    root = roots.get(str(target))
    if root is None:
        return []  # the caller does not see that target's files
    n = attempt.get("n")
    rdir = root / "runs" / str(entry.get("id")) / str(n)
    if not (rdir / "wrapper.sh").is_file():
        return [f"attempt {n}'s run dir {rdir} has no wrapper.sh on target {target}"]
    out: list[str] = []
    token = (rdir / "token").read_text().strip() if (rdir / "token").is_file() else None
    if token != attempt.get("token"):
        out.append(f"run dir {rdir} holds token {token!r}, not attempt {n}'s {attempt.get('token')!r}")
    ran = wrapper_facts((rdir / "wrapper.sh").read_text(encoding="utf-8", errors="replace"))
    if ran.get("command") != attempt.get("command"):
        out.append(f"attempt {n} records command {attempt.get('command')!r}; its run dir ran {ran.get('command')!r}")
    commit = Path(str(ran.get("code_dir", ""))).name or None
    if commit != attempt.get("git_commit"):
        out.append(f"attempt {n} records commit {attempt.get('git_commit')!r}; its run dir ran code/{commit}")
    if ran["gpus"] != list(attempt.get("gpus") or []):
        out.append(f"attempt {n} records GPUs {attempt.get('gpus')}; its run dir ran on {ran['gpus']}")
    return out


def _result_problems(entry: Mapping[str, Any], attempt: Mapping[str, Any], results: Path) -> list[str]:
    path = results / f"{entry.get('id')}.csv"
    if not path.is_file():
        return [f"done, but {path.name} is not in {results}"]
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    out: list[str] = []
    for row in rows:
        if row.get("exp_id") != entry.get("id"):
            out.append(f"{path.name} has a row of {row.get('exp_id')!r}")
        host, ran_on = row.get("host") or None, attempt.get("host")
        if host and ran_on and host != ran_on:
            out.append(f"{path.name} says it ran on {host!r}; attempt {attempt.get('n')} ran on {ran_on!r}")
    return out
