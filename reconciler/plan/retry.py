"""Whether a failed attempt is retried automatically, and if not, why (pure).

Every failure class is retried while the entry has automatic retries left, unless a rule says
``retry: false`` for it: the experiment's ``remediation:``, else the project's
``policies.remediation``, else the built-in rule (``failure.DEFAULT_RULES``, whose refusals
``failure.NOT_RETRIED`` explains). Manual retries (``reconcile resolve EXP --retry``) are not
counted against ``max_retries``.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.config import Policies
from reconciler.model.spec import DesiredRunState, ExperimentSpec, RemediationRule
from reconciler.model.status import StatusEntry
from reconciler.plan.failure import NOT_RETRIED, retry_source, rule_for


@dataclass(frozen=True)
class RetryDecision:
    rule: RemediationRule
    """The class's rule (its remediation is applied to the next attempt's command)."""
    why_not: str | None
    """``None``: retry; else why there is no automatic retry, in words for ``status``."""


def decide_retry(entry: StatusEntry, klass: str, spec: ExperimentSpec | None, policies: Policies) -> RetryDecision:
    overrides = spec.remediation if spec is not None else ()
    rule = rule_for(klass, overrides, policies.remediation)
    if spec is None:
        return RetryDecision(rule, "no automatic retry: the experiment is no longer in the spec")
    if spec.state is not DesiredRunState.ACTIVE:
        return RetryDecision(rule, f"no automatic retry: the spec says state: {spec.state.value}")
    if not rule.retry:
        return RetryDecision(rule, _refusal(klass, retry_source(klass, overrides, policies.remediation)))
    if entry.retry_count >= entry.max_retries:
        used = f"{entry.retry_count} of {entry.max_retries} automatic retries used"
        return RetryDecision(rule, f"no automatic retry left ({used})")
    return RetryDecision(rule, None)


def _refusal(klass: str, source: str) -> str:
    if source == "experiment":
        return f"no automatic retry for {klass}: the experiment's remediation rule says retry: false"
    if source == "project":
        return f"no automatic retry for {klass}: policies.remediation says retry: false"
    why = NOT_RETRIED.get(klass, "its rule says retry: false")
    return f"no automatic retry for {klass}: {why} (remediation: {{{klass}: {{retry: true}}}} turns it on)"
