"""What the seed kept under ``progress/``: its hosts' environment verdicts and its escalations.

``progress/env_<HOST>.json`` (seed-system 1.7) tells where the seed's checkout lives on each host
(``remote_project_dir``): its runs' checkpoints are under ``experiments/checkpoints/<EXP_ID>/``
there, so the import points the target's ``checkpoint_dir`` at them and ``--resume`` finds them.
The verdicts themselves are not ours (our check ships the code and runs it), so they are reported,
not trusted: the first pass checks each target again.

``progress/escalate_<EXP_ID>.md`` (1.8) is free-form markdown; the Gadi template writes
``reason:``, ``action_needed:`` and ``timestamp:`` lines. Each becomes the entry's escalation: open
unless the entry is already done or cancelled, with the file's lines as evidence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_FILE_BYTES = 64 * 1024
MAX_EVIDENCE_LINES = 20
_ENV_FILE = re.compile(r"^env_(?P<host>.+)\.json$")
_ESCALATION_FILE = re.compile(r"^escalate_(?P<id>.+)\.md$")
_FIELD = re.compile(
    r"^\s*(?:[-*]\s+)?(?:\*\*)?(?P<key>reason|action_needed|timestamp|last error|error)(?:\*\*)?\s*:\s*(?P<value>.+)$",
    re.I,
)


@dataclass(frozen=True)
class EnvVerdict:
    host: str
    status: str
    remote_project_dir: str | None


def _small_text(path: Path) -> str | None:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def read_env_verdicts(progress: Path) -> dict[str, EnvVerdict]:
    """Host -> its ``env_<HOST>.json`` (files that cannot be read are skipped)."""
    verdicts: dict[str, EnvVerdict] = {}
    if not progress.is_dir() or progress.is_symlink():
        return verdicts
    for path in sorted(progress.glob("env_*.json")):
        match = _ENV_FILE.match(path.name)
        text = _small_text(path)
        if match is None or text is None:
            continue
        try:
            doc = json.loads(text)
        except ValueError:
            continue
        if not isinstance(doc, dict):
            continue
        host = str(doc.get("host") or match["host"])
        remote = doc.get("remote_project_dir")
        remote_dir = remote.rstrip("/") if isinstance(remote, str) and remote.startswith("/") else None
        verdicts[host] = EnvVerdict(host, str(doc.get("status") or ""), remote_dir)
    return verdicts


def read_escalations(progress: Path, ids: set[str]) -> dict[str, str]:
    """Entry id -> the text of its ``escalate_<EXP_ID>.md`` (only ids of entries)."""
    found: dict[str, str] = {}
    if not progress.is_dir() or progress.is_symlink():
        return found
    for path in sorted(progress.glob("escalate_*.md")):
        match = _ESCALATION_FILE.match(path.name)
        if match is None or match["id"] not in ids:
            continue
        text = _small_text(path)
        if text is not None and text.strip():
            found[match["id"]] = text
    return found


def escalation_from_seed(text: str, entry: Mapping[str, Any], fallback_time: str) -> dict[str, Any]:
    """The escalation (as the state file holds it) for one seed escalation file."""
    fields: dict[str, str] = {}
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    for line in lines:
        match = _FIELD.match(line)
        if match:
            fields.setdefault(match["key"].lower().replace(" ", "_"), match["value"].strip())
    first = next((line.lstrip("# ").strip() for line in lines if line.lstrip("# ").strip()), "")
    reason = fields.get("reason") or fields.get("last_error") or fields.get("error") or first
    status = str(entry.get("status") or "").lower()
    finished = status in ("done", "cancelled")
    escalation: dict[str, Any] = {
        "reason": f"seed escalation: {reason}"[:500],
        "created": fields.get("timestamp") or fallback_time,
        "needed": fields.get("action_needed")
        or "decide with reconcile resolve (--retry, --continue, --fail, --cancel)",
        "kind": "seed",
        "evidence": lines[:MAX_EVIDENCE_LINES],
        "status": "closed" if finished else "open",
    }
    if finished:
        escalation["resolution"] = f"closed at import: the entry is {status}"
        escalation["closed"] = fallback_time
    return escalation
