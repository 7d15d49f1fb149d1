"""The issue-14 invariants of the chaos suite, checked after every pass where they make sense.

(b) ``provenance_violations``: a ``done`` entry's command, commit, target, GPUs and result are those of
    the attempt that produced its result. The truth is the attempt's run dir on the target
    (``<root of entry.target>/runs/<id>/<attempt>``): it must hold the attempt's token, exit code
    0, a ``wrapper.sh`` that ``cd``s into ``code/<entry.git_commit>``, runs the entry's command
    (its template expanded with the run's own ``result_path``) and exports the GPUs the attempt
    records (``CUDA_VISIBLE_DEVICES``), and the result file the project
    committed, byte for byte (every job writes its pid and time into it, so two attempts never
    write the same bytes).
(c) ``untracked_files``: ``git status --porcelain --ignored`` shows no untracked, unignored file
    (``??``): every file a pass leaves in the project is committed or ignored.
(d) ``projection``/``noise_commits``: a pass that made a reconciler commit changed the committed
    state on a transition-relevant field. What counts (``TRANSITION_FIELDS`` per entry, plus the
    set of entries, the committed result files and environment verdicts, and per attempt
    ``ATTEMPT_FIELDS``): status,
    attempt, escalation, failure class, retries, the spec the entry records (command, spec hash,
    priority, stage...), the condition types shown, and the outcome of each attempt. Not counted:
    counters (``unreachable``), heartbeats, progress (``sidecar``), waiting reasons, timestamps of
    an unchanged outcome, pids: the issue says those stay out of commits until the next transition.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

TRANSITION_FIELDS = (
    "status",
    "attempt",
    "escalation",
    "failure_class",
    "retry_count",
    "next_retry_at",
    "command",
    "spec_hash",
    "priority",
    "stage",
    "phase",
    "max_retries",
    "result_file",
    "target",
    "git_commit",
)
ATTEMPT_FIELDS = ("n", "target", "exit_code", "failure_class", "command", "git_commit", "job_id")
OWN_TEMP_MARKS = (".tmp",)


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


# -- (b) provenance -------------------------------------------------------------------------------


def expand(template: str, entry: dict[str, Any], result_path: str) -> str:
    """The command a run of ``entry`` executes: the placeholders the chaos dispatch uses."""
    seed = entry.get("seed")
    return (
        template.replace("{exp_id}", str(entry["id"]))
        .replace("{seed}", "" if seed is None else str(seed))
        .replace("{result_file}", result_path)
    )


def provenance_violations(project: Path, state: dict[str, dict[str, Any]], roots: dict[str, Path]) -> list[str]:
    """Invariant (b) for every ``done`` entry of ``state`` (targets without a root are skipped)."""
    out: list[str] = []
    for exp_id, entry in sorted(state.items()):
        if entry.get("status") != "done":
            continue
        target, n = entry.get("target"), entry.get("attempt")
        where = f"invariant b: {exp_id} done (attempt {n} on {target})"
        root = roots.get(str(target))
        if root is None:
            out.append(f"{where}: the entry's target is not one of the scenario's")
            continue
        attempt = next((a for a in entry.get("attempts") or [] if a.get("n") == n), None)
        run_dir = root / "runs" / exp_id / str(n)
        if attempt is None:
            out.append(f"{where}: no attempt record {n}")
            continue
        if not (run_dir / "wrapper.sh").exists() and not (run_dir / "job.sh").exists():
            out.append(f"{where}: no run dir with a wrapper at {run_dir}")
            continue
        token = _read(run_dir / "token")
        if token is not None and attempt.get("token") and token != attempt["token"]:
            out.append(f"{where}: run dir token {token!r} is not the attempt's {attempt['token']!r}")
        exit_code = _read(run_dir / "exit_code")
        if exit_code != "0":
            out.append(f"{where}: its run dir's exit code is {exit_code!r}")
        wrapper = _read(run_dir / "wrapper.sh") or _read(run_dir / "job.sh") or ""
        result_path = _read(run_dir / "result_path") or ""
        command = expand(str(entry.get("command", "")), entry, result_path)
        ran = _ran_command(wrapper)
        if ran is not None and ran != command:
            out.append(f"{where}: records command {command!r} but its run dir ran {ran!r}")
        if attempt.get("command") and ran is not None and attempt["command"] != ran:
            out.append(f"{where}: attempt record says {attempt['command']!r} but its run dir ran {ran!r}")
        exported = _exported_gpus(wrapper)
        if exported is not None and list(attempt.get("gpus") or []) != exported:
            out.append(f"{where}: attempt record says GPUs {attempt.get('gpus')} but its run dir ran on {exported}")
        commit = entry.get("git_commit")
        if commit and f"/code/{commit} " not in wrapper and f"/code/{commit}\n" not in wrapper:
            shipped = _code_commit(wrapper)
            out.append(f"{where}: records commit {str(commit)[:12]} but its run dir ran code {shipped[:12]}")
        result = entry.get("result_file") or f"experiments/results/{exp_id}.csv"
        committed = project / result
        if result_path and committed.exists():
            produced = Path(result_path)
            if not produced.exists():
                out.append(f"{where}: its run dir has no result at {produced}")
            elif produced.read_bytes() != committed.read_bytes():
                out.append(f"{where}: the committed {result} is not the result its run dir produced")
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _ran_command(wrapper: str) -> str | None:
    """The command of ``exec sh -c '<command>'`` in a wrapper, or None when there is none."""
    for line in wrapper.splitlines():
        words = line.strip()
        if words.startswith("exec sh -c "):
            try:
                parts = shlex.split(words)
            except ValueError:
                return None
            return parts[3] if len(parts) >= 4 else None
    return None


def _exported_gpus(wrapper: str) -> list[int] | None:
    """The GPUs the wrapper exported (``CUDA_VISIBLE_DEVICES``), or None when it exported none."""
    for line in wrapper.splitlines():
        words = line.strip()
        if words.startswith("export CUDA_VISIBLE_DEVICES="):
            value = shlex.split(words.split("=", 1)[1] or "''")
            return [int(w) for w in (value[0] if value else "").split(",") if w.strip().isdigit()]
    return None


def _code_commit(wrapper: str) -> str:
    for line in wrapper.splitlines():
        if "/code/" in line and line.strip().startswith("cd "):
            return line.split("/code/", 1)[1].split()[0].split("/")[0]
    return "?"


# -- (c) files ------------------------------------------------------------------------------------


def untracked_files(project: Path) -> list[str]:
    """Invariant (c): paths ``git status`` shows untracked and not ignored."""
    done = _git(project, "status", "--porcelain=v1", "--ignored", "--untracked-files=all")
    return [line[3:] for line in done.stdout.splitlines() if line.startswith("?? ")]


# -- (d) commits ----------------------------------------------------------------------------------


def head(project: Path) -> str:
    return _git(project, "rev-parse", "HEAD").stdout.strip()


def recorded(state_text: str, read: Any) -> tuple[list[Any], list[str]]:
    """Every entry of a state file's text: its own and those of the phases it lists as archived
    (``read(path)``: an archive file's text, ``None`` when absent; a live entry wins), and the
    archived phases. An experiment in neither is lost (invariant 3)."""
    try:
        doc = json.loads(state_text)
        entries = list(doc["experiments"])
        archived = doc.get("archived") or {}
    except (ValueError, KeyError, TypeError, AttributeError):
        return [], []
    live = {e.get("id") for e in entries if isinstance(e, dict)}
    for phase, record in sorted(archived.items()):
        text = read(str(record.get("file", f"dispatch/archive/{phase}.json")))
        try:
            more = json.loads(text)["experiments"] if text else []
        except (ValueError, KeyError, TypeError):
            more = []
        entries += [e for e in more if isinstance(e, dict) and e.get("id") not in live]
    return entries, sorted(archived)


def projection(project: Path, commit: str) -> dict[str, Any]:
    """The transition-relevant content of the committed state at ``commit`` (see the module doc),
    archived phases included (moving a phase to ``dispatch/archive/`` is a change of its own)."""
    text = _git(project, "show", f"{commit}:dispatch/state.json").stdout
    entries, phases = recorded(text, lambda path: _git(project, "show", f"{commit}:{path}").stdout)
    out: dict[str, Any] = {"<archived>": phases}
    for e in entries:
        if not isinstance(e, dict):
            continue
        item: dict[str, Any] = {k: e.get(k) for k in TRANSITION_FIELDS}
        conditions = e.get("conditions") or []
        item["conditions"] = sorted(str(c.get("type", c)) if isinstance(c, dict) else str(c) for c in conditions)
        item["attempts"] = [{k: a.get(k) for k in ATTEMPT_FIELDS} for a in e.get("attempts") or []]
        out[str(e.get("id"))] = item
    results = _git(project, "ls-tree", "-r", commit, "--", "experiments/results").stdout
    out["<results>"] = sorted(results.splitlines())
    # A target's environment verdict (checked when the code or its age asks for it) is a transition.
    verdicts = _git(project, "ls-tree", commit, "--", "progress/").stdout
    out["<env verdicts>"] = sorted(line for line in verdicts.splitlines() if "/env_" in line)
    return out


def reconciler_commits(project: Path, before: str, after: str, email: str) -> list[str]:
    if before == after:
        return []
    done = _git(project, "log", f"--author={email}", "--format=%h %s", f"{before}..{after}")
    return [line for line in done.stdout.splitlines() if line.strip()]


def noise_commits(project: Path, before: str, after: str, email: str) -> list[str]:
    """Invariant (d): the reconciler's commits between ``before`` and ``after`` when the committed
    state's projection did not change (empty when it changed or nobody of ours committed).
    A person's commit in the range is not ours; a projection change of theirs alone (their
    commits never touch state.json) cannot hide one of ours."""
    ours = reconciler_commits(project, before, after, email)
    if not ours:
        return []
    if projection(project, before) != projection(project, after):
        return []
    return ours


def projection_diff(project: Path, before: str, after: str) -> str:
    """Which raw fields the commits changed (for the report of a noise commit)."""

    def entries(commit: str) -> dict[str, Any]:
        try:
            data = json.loads(_git(project, "show", f"{commit}:dispatch/state.json").stdout)
            return {str(e.get("id")): e for e in data["experiments"]}
        except (ValueError, KeyError, TypeError):
            return {}

    old, new = entries(before), entries(after)
    changed: set[str] = set()
    for exp_id in set(old) | set(new):
        a, b = old.get(exp_id, {}), new.get(exp_id, {})
        changed |= {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
    files = _git(project, "diff", "--name-only", before, after).stdout.split()
    return f"state fields changed: {sorted(changed) or 'none'}; files: {files}"
