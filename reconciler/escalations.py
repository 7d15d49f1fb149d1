"""Render an experiment's escalation as ``progress/escalate_<EXP_ID>.md``: YAML front matter a
tool can read, then the same in words for the person who has to decide.

Called by the engine after a pass for every entry whose escalation changed (opened or closed);
an unchanged escalation is not rewritten, so a problem makes one file, not one per pass.
"""

from __future__ import annotations

import yaml

from reconciler.model.escalation import Escalation, escalation_path
from reconciler.model.status import StatusEntry

_ACTIONS = {"retry": "--retry", "continue": "--continue", "fail": "--fail", "cancel": "--cancel"}


def render(entry: StatusEntry, escalation: Escalation) -> str:
    front = {
        "exp_id": entry.id,
        "status": escalation.status,
        "kind": escalation.kind,
        "reason": escalation.reason,
        "class": escalation.failure_class,
        "created": escalation.created,
        "decision_needed": escalation.needed,
        "target": entry.target,
        "attempt": entry.attempt,
        "evidence": list(escalation.evidence),
    }
    if not escalation.open:
        front["resolution"] = escalation.resolution
        front["closed"] = escalation.closed
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=1000).rstrip(), "---", ""]
    lines.append(f"# {entry.id}: {escalation.kind.replace('_', ' ')} ({escalation.status})")
    lines += ["", escalation.reason, ""]
    if escalation.evidence:
        lines += ["Evidence (last lines):", "", "```", *escalation.evidence, "```", ""]
    attempts = [a for a in entry.attempts if a.command]
    if attempts:
        lines += ["Attempts:", ""]
        for a in attempts:
            outcome = a.failure_class or ("running" if a.finished is None else f"exit {a.exit_code}")
            lines.append(f"- {a.n} on {a.target}: `{a.command}` → {outcome}")
        lines.append("")
    if escalation.open:
        verbs = [
            f"`reconcile resolve {entry.id} {flag}`" for word, flag in _ACTIONS.items() if word in escalation.needed
        ]
        lines.append(f"Decision needed: {escalation.needed}.")
        if verbs:
            lines += ["", "Record it with " + ", ".join(verbs) + " (writes `dispatch/decisions.yaml` and commits it)."]
    else:
        lines.append(f"Closed {escalation.closed}: {escalation.resolution}.")
    return "\n".join(lines) + "\n"


def changed(before: StatusEntry | None, after: StatusEntry) -> bool:
    old = before.escalation if before else None
    return after.escalation is not None and after.escalation != old


def path_of(entry: StatusEntry) -> str:
    return escalation_path(entry.id)
