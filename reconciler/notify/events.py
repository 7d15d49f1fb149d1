"""What to announce after a pass (pure): ``notifications(before, after, ...)`` compares the status
before and after the pass and returns one ``Notification`` per event, each with a stable ``key``
so that the outbox (``reconciler.notify.outbox``) never sends it twice, however often a pass
computes it again.

Events (names as in ``notifications.events`` of the config):

    escalation     an escalation opened by this pass            key escalation:<exp_id>:<created>
    stage_done     every experiment of (phase, stage) is final  key stage_done:<phase>:<stage>:<n>
                   (only for phases with more than one stage; else phase_done says it)
    phase_done     every experiment of a phase is final         key phase_done:<phase>:<n>
    failure_rate   more than ``threshold`` of a (phase, group)  key failure_rate:<phase>:<group>
                   failed (the seed's "PAUSE if more than 50 % of the group fails")

``n`` is the number of experiments, so a stage that grows and finishes again is announced again.
Texts carry ids, counts and reasons, never a secret (the state holds none).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.model.escalation import escalation_path
from reconciler.model.status import StateFile, Status, StatusEntry

EVENTS = ("escalation", "stage_done", "phase_done", "failure_rate")


@dataclass(frozen=True)
class Notification:
    key: str
    text: str
    event: str = ""


def notifications(
    before: StateFile,
    after: StateFile,
    *,
    project: str = "",
    events: Iterable[str] = EVENTS,
    threshold: float = 0.5,
) -> list[Notification]:
    wanted = set(events)
    tag = f"[{project or after.project}]"
    out: list[Notification] = []
    if "escalation" in wanted:
        out += _escalations(before, after, tag)
    if "stage_done" in wanted or "phase_done" in wanted:
        out += _completions(before, after, tag, wanted)
    if "failure_rate" in wanted:
        out += _failure_rates(before, after, tag, threshold)
    return out


def _escalations(before: StateFile, after: StateFile, tag: str) -> list[Notification]:
    old = before.by_id()
    out = []
    for entry in after.entries:
        esc = entry.escalation
        if esc is None or not esc.open:
            continue
        prev = old.get(entry.id)
        if prev is not None and prev.escalation == esc:
            continue
        text = (
            f"⚠️ {tag} {entry.id} needs a decision: {esc.reason}.\n"
            f"Needed: {esc.needed}.\nFile: {escalation_path(entry.id)}"
        )
        out.append(Notification(f"escalation:{entry.id}:{esc.created}", text, "escalation"))
    return out


def _final(entries: list[StatusEntry]) -> bool:
    return bool(entries) and all(e.status.final for e in entries)


def _counts(entries: list[StatusEntry]) -> str:
    c = Counter(e.status.value for e in entries)
    return ", ".join(f"{n} {s}" for s, n in sorted(c.items()))


def _completions(before: StateFile, after: StateFile, tag: str, wanted: set[str]) -> list[Notification]:
    def by_phase(state: StateFile) -> dict[str, list[StatusEntry]]:
        out: dict[str, list[StatusEntry]] = {}
        for e in state.entries:
            out.setdefault(e.phase, []).append(e)
        return out

    old, new = by_phase(before), by_phase(after)
    out = []
    for phase, entries in sorted(new.items()):
        stages = sorted({e.stage for e in entries})
        if "stage_done" in wanted and len(stages) > 1:
            for stage in stages:
                members = [e for e in entries if e.stage == stage]
                was = [e for e in old.get(phase, []) if e.stage == stage]
                if _final(members) and not (_final(was) and len(was) == len(members)):
                    text = f"✅ {tag} Stage {stage} of phase {phase or '-'} done: {_counts(members)}."
                    out.append(Notification(f"stage_done:{phase}:{stage}:{len(members)}", text, "stage_done"))
        was = old.get(phase, [])
        if "phase_done" in wanted and _final(entries) and not (_final(was) and len(was) == len(entries)):
            text = f"🏁 {tag} Phase {phase or '-'} done: {_counts(entries)}."
            out.append(Notification(f"phase_done:{phase}:{len(entries)}", text, "phase_done"))
    return out


def _rate(entries: list[StatusEntry]) -> float:
    return sum(e.status is Status.FAILED for e in entries) / len(entries) if entries else 0.0


def _failure_rates(before: StateFile, after: StateFile, tag: str, threshold: float) -> list[Notification]:
    def groups(state: StateFile) -> dict[tuple[str, str], list[StatusEntry]]:
        out: dict[tuple[str, str], list[StatusEntry]] = {}
        for e in state.entries:
            out.setdefault((e.phase, e.group), []).append(e)
        return out

    old, new = groups(before), groups(after)
    out = []
    for (phase, group), entries in sorted(new.items()):
        rate = _rate(entries)
        if rate <= threshold or _rate(old.get((phase, group), [])) > threshold:
            continue
        failed = [e for e in entries if e.status is Status.FAILED]
        causes = Counter(e.failure_class or "unknown" for e in failed)
        cause_text = ", ".join(f"{c} x{n}" for c, n in sorted(causes.items()))
        text = (
            f"❌ {tag} {len(failed)} of {len(entries)} {group} experiments of phase {phase or '-'} failed"
            f" ({rate:.0%}). Causes: {cause_text}.\nAction needed: `reconcile status`, then"
            " `reconcile resolve`."
        )
        out.append(Notification(f"failure_rate:{phase}:{group}", text, "failure_rate"))
    return out
