"""Failure classes and remediation: why an attempt failed, and what the next attempt changes.

Pure functions over the exit code, the scheduler state and the log tail. The classes are tried in
a fixed order (the seed's order, extended): the first match wins and its matching lines are the
evidence recorded on the attempt.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.model.observed import FATAL_MARKERS, FATAL_WORDS
from reconciler.model.spec import RemediationRule

CUDA_OOM = "cuda_oom"
KERNEL_OOM = "kernel_oom"
KILLED = "killed"
"""Killed by SIGKILL (exit 137) with no evidence of the kernel's OOM killer: someone's ``kill -9``,
a watchdog. Retried as it was (no remediation) while retries remain."""
NAN_LOSS = "nan_loss"
IMPORT_ERROR = "import_error"
DISK_FULL = "disk_full"
WANDB_CONNECTION = "wandb_connection"
WALLTIME = "walltime"
PREEMPTED = "preempted"
NODE_FAIL = "node_fail"
INVALID_RESULT = "invalid_result"
LOST = "lost"
UNKNOWN = "unknown"
LAUNCH_ERROR = "launch_error"
TIMEOUT = "timeout"
"""Killed by the duration guard (``policies.timeouts.kill_on_hold``)."""

MIN_FREE_GB = 1.0
"""Below this much free disk where runs write, an unexplained failure is ``disk_full`` and the
target takes no new run."""

_LOG_SIGNATURES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (CUDA_OOM, re.compile(r"CUDA out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED", re.I)),
    (KERNEL_OOM, re.compile(r"oom-kill|Out of memory: Killed process|Killed process \d+", re.I)),
    (NAN_LOSS, re.compile(r"loss\s*[=:]\s*(nan|inf|-inf)\b|\bNaN loss\b|non-finite loss", re.I)),
    (IMPORT_ERROR, re.compile(r"ModuleNotFoundError|ImportError")),
    (DISK_FULL, re.compile(r"No space left on device|Disk quota exceeded", re.I)),
    (WANDB_CONNECTION, re.compile(r"wandb:.*(ConnectionError|Network error|timed out)", re.I)),
)

FATAL_WHILE_RUNNING = (CUDA_OOM, NAN_LOSS)
"""Signatures that end a live run at once: the process group is killed, then the attempt fails."""


def _may_be_fatal(log_tail: Sequence[str]) -> bool:
    """A cheap necessary condition for a fatal signature (CUDA OOM, NaN loss) in ``log_tail``.

    Every pass looks at every live run, and the signatures' case-insensitive regexes cost ~10 us a
    line. Each signature needs one of ``FATAL_MARKERS`` in the lowercased text, or one of
    ``FATAL_WORDS`` ending a word; substring searches find them at C speed, and only a tail that
    has one is matched in full. The probe applies the same test on the target (its request carries
    the markers) and sends a live run's tail only when it passes, so this mostly sees ``()``."""
    if not log_tail:  # a live run's tail with no marker: the probe did not send it
        return False
    return _may_be_fatal_text("\n".join(log_tail).lower())


def _may_be_fatal_text(text: str) -> bool:
    """``_may_be_fatal`` of the tail's lines joined by newlines and lowercased (``text``)."""
    for marker in FATAL_MARKERS:
        if marker in text:
            return True
    return any(_ends_a_word(text, word) for word in FATAL_WORDS)


def _ends_a_word(text: str, word: str) -> bool:
    at = text.find(word)
    while at >= 0:
        end = at + len(word)
        if end == len(text) or not (text[end].isalnum() or text[end] == "_"):
            return True
        at = text.find(word, end)
    return False


_SCHEDULER_CLASSES = {
    "TIMEOUT": WALLTIME,
    "WALLTIME": WALLTIME,
    "PREEMPTED": PREEMPTED,
    "NODE_FAIL": NODE_FAIL,
    "OUT_OF_MEMORY": KERNEL_OOM,
}

DEFAULT_RULES: dict[str, RemediationRule] = {
    CUDA_OOM: RemediationRule(CUDA_OOM, halve_args=("--batch-size",), set_args=(("--accumulate-grad-batches", "2"),)),
    KERNEL_OOM: RemediationRule(KERNEL_OOM, halve_args=("--batch-size",)),
    NAN_LOSS: RemediationRule(NAN_LOSS, set_args=(("--grad-clip", "1.0"),), drop_flags=("--fp16",)),
    WANDB_CONNECTION: RemediationRule(WANDB_CONNECTION, env=(("WANDB_MODE", "offline"),)),
    IMPORT_ERROR: RemediationRule(IMPORT_ERROR, retry=False),
    DISK_FULL: RemediationRule(DISK_FULL, retry=False),
    INVALID_RESULT: RemediationRule(INVALID_RESULT, retry=False),
    LAUNCH_ERROR: RemediationRule(LAUNCH_ERROR, retry=False),
    TIMEOUT: RemediationRule(TIMEOUT, retry=False),
    WALLTIME: RemediationRule(WALLTIME),
    PREEMPTED: RemediationRule(PREEMPTED),
    NODE_FAIL: RemediationRule(NODE_FAIL),
    LOST: RemediationRule(LOST),
    KILLED: RemediationRule(KILLED),
}
"""The built-in rules. Every class is retried while retries remain (``unknown``, ``walltime``,
``lost``, … with the command unchanged) except the ones whose rule says
``retry=False``; ``NOT_RETRIED`` says why for each. A project (``policies.remediation``) or an
experiment (``remediation:``) overrides any of them, ``retry`` included."""

NOT_RETRIED: dict[str, str] = {
    IMPORT_ERROR: "the same code in the same environment fails the same way",
    DISK_FULL: "the disk stays full until someone frees space, and a rerun would fail the same way",
    INVALID_RESULT: "the job exited 0, so the same code would write the same rejected result",
    LAUNCH_ERROR: "the target refused the launch itself",
    TIMEOUT: "the duration guard killed it, and a rerun would run as long",
}
"""Why a built-in rule does not retry its class (shown in the escalation and ``status``)."""


@dataclass(frozen=True)
class Failure:
    klass: str
    evidence: tuple[str, ...]
    message: str


def classify(
    exit_code: int | None,
    log_tail: Sequence[str],
    scheduler_state: str | None = None,
    oom_evidence: Sequence[str] = (),
) -> Failure:
    """Decide the failure class of an ended attempt. Exit 137 (SIGKILL) is ``kernel_oom`` only with
    evidence (``oom_evidence``: the memory cgroup's OOM-kill count went up, or the kernel's
    OOM-killer line naming the run; or that line in the log); else ``killed``."""
    for klass, pattern in _LOG_SIGNATURES:
        lines = tuple(line for line in log_tail if pattern.search(line))
        if lines:
            return Failure(klass, lines[-5:], f"{klass} (exit {exit_code})")
    if exit_code in (137, -9) and klass_of_state(scheduler_state) is None:
        if oom_evidence:
            evidence = (*log_tail[-2:], *oom_evidence[-3:])
            return Failure(KERNEL_OOM, evidence, f"killed by the kernel's OOM killer (exit {exit_code})")
        return Failure(KILLED, tuple(log_tail[-3:]), f"killed by SIGKILL, no OOM evidence (exit {exit_code})")
    state_class = klass_of_state(scheduler_state)
    if state_class:
        return Failure(state_class, tuple(log_tail[-3:]), f"scheduler state {scheduler_state}")
    return Failure(UNKNOWN, tuple(log_tail[-5:]), f"exit code {exit_code}")


def klass_of_state(state: str | None) -> str | None:
    return _SCHEDULER_CLASSES.get((state or "").upper())


def _ascii_may_match(klass: str, low: str) -> bool:
    """A necessary condition for ``klass``'s signature to match a line of an ASCII log tail,
    tested on the tail's lines joined by newlines and lowercased (``low``) at C speed: on ASCII
    text a case-insensitive regex matches where its lowercased form matches the lowercased text.
    Each signature needs one of its literals (``loss`` followed by ``=`` or ``:`` and a non-finite
    value, for the first form of ``nan_loss``, found by a case-sensitive regex with a literal
    prefix). ``True`` for a class it knows nothing of."""
    if klass == CUDA_OOM:
        return "cuda out of memory" in low or "outofmemoryerror" in low or "cublas_status_alloc_failed" in low
    if klass == NAN_LOSS:
        return "non-finite loss" in low or "nan loss" in low or _LOSS_NOT_FINITE.search(low) is not None
    return True


_LOSS_NOT_FINITE = re.compile(r"loss\s*[=:]\s*(?:nan|inf|-inf)")
"""``nan_loss``'s first form, lowercased and without its closing ``\\b`` (so it matches at least
where the signature does)."""


def fatal_signature(log_tail: Sequence[str]) -> Failure | None:
    """A fatal line in the log of a run that is still alive (CUDA OOM, NaN loss)."""
    if not log_tail:  # a live run's tail with no marker: the probe did not send it
        return None
    joined = "\n".join(log_tail)
    low = joined.lower()
    if not _may_be_fatal_text(low):  # every live run, every pass (``_may_be_fatal``)
        return None
    ascii_only = joined.isascii()
    for klass, pattern in _LOG_SIGNATURES:
        if klass not in FATAL_WHILE_RUNNING:
            continue
        if ascii_only and not _ascii_may_match(klass, low):  # ~1 us instead of ~20 us a line
            continue
        lines = tuple(line for line in log_tail if pattern.search(line))
        if lines:
            return Failure(klass, lines[-5:], f"{klass} while running")
    return None


def rule_for(
    klass: str, overrides: Sequence[RemediationRule], project: Sequence[RemediationRule] = ()
) -> RemediationRule:
    """The rule for ``klass``: the experiment's, else the project's (config), else the built-in
    one; fields a rule leaves empty (``retry`` included) come from the level below it. The
    result's ``retry`` is never ``None``: a class no level decides is retried."""
    rule = DEFAULT_RULES.get(klass, RemediationRule(klass))
    for level in (project, overrides):
        for override in level:
            if override.failure_class == klass:
                rule = _over(override, rule)
    return rule if rule.retry is not None else dataclasses.replace(rule, retry=True)


def retry_source(klass: str, overrides: Sequence[RemediationRule], project: Sequence[RemediationRule] = ()) -> str:
    """Which level decided ``retry`` for ``klass``: ``experiment``, ``project`` or ``built-in``."""
    for name, level in (("experiment", overrides), ("project", project)):
        if any(r.failure_class == klass and r.retry is not None for r in level):
            return name
    return "built-in"


def _over(rule: RemediationRule, base: RemediationRule) -> RemediationRule:
    return dataclasses.replace(
        rule,
        retry=rule.retry if rule.retry is not None else base.retry,
        set_args=rule.set_args or base.set_args,
        halve_args=rule.halve_args or base.halve_args,
        add_flags=rule.add_flags or base.add_flags,
        drop_flags=rule.drop_flags or base.drop_flags,
        env=rule.env or base.env,
        defaults=rule.defaults or base.defaults,
    )


def remediate(command: str, rule: RemediationRule) -> str:
    """Apply ``rule`` to a shell command: halve, set, add and drop flags (``--flag value`` or ``--flag=value``)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    defaults = dict(rule.defaults)
    for flag in rule.halve_args:
        value = _get(words, flag)
        if value is None:
            value = defaults.get(flag)
        if value is not None and value.isdigit():
            words = _set(words, flag, str(max(1, int(value) // 2)))
    for flag, value in rule.set_args:
        words = _set(words, flag, value)
    for flag in rule.drop_flags:
        words = [w for w in words if w != flag and not w.startswith(flag + "=")]
    for flag in rule.add_flags:
        if flag not in words:
            at = _insert_at(words)
            words = [*words[:at], flag, *words[at:]]
    if words == shlex.split(command):
        return command
    return " ".join(w if w in _SHELL_OPERATORS or _PLAIN_WORD.fullmatch(w) else shlex.quote(w) for w in words)


_SHELL_OPERATORS = frozenset({"&&", "||", ";", "|", ">", ">>", "<", "2>&1", "&"})
_PLAIN_WORD = re.compile(r"[\w@%+=:,./{}$-]+")
"""Words left unquoted: placeholders (``{seed}``) and ``$VARS`` must survive remediation."""


def _get(words: list[str], flag: str) -> str | None:
    for i, w in enumerate(words):
        if w == flag and i + 1 < len(words):
            return words[i + 1]
        if w.startswith(flag + "="):
            return w.split("=", 1)[1]
    return None


def _set(words: list[str], flag: str, value: str) -> list[str]:
    out = list(words)
    for i, w in enumerate(out):
        if w == flag and i + 1 < len(out):
            out[i + 1] = value
            return out
        if w.startswith(flag + "="):
            out[i] = f"{flag}={value}"
            return out
    at = _insert_at(out)
    return [*out[:at], flag, value, *out[at:]]


_CHAINS = frozenset({"&&", "||", ";", "|", "&"})
_REDIRECTS = frozenset({">", ">>", "<", "2>&1", "2>", "&>"})


def _insert_at(words: list[str]) -> int:
    """Where a new flag goes: at the end of the training command (the first part of a ``&&``
    chain that runs python, else the last part), before its redirections."""
    parts: list[tuple[int, int]] = []
    start = 0
    for i, w in enumerate(words):
        if w in _CHAINS:
            parts.append((start, i))
            start = i + 1
    parts.append((start, len(words)))
    chosen = next((p for p in parts if any("python" in w for w in words[p[0] : p[1]])), parts[-1])
    end = chosen[1]
    for i in range(chosen[0], chosen[1]):
        if words[i] in _REDIRECTS:
            return i
    return end
