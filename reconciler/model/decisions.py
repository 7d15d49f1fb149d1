"""Human decisions (``dispatch/decisions.yaml``): each one is applied once, by its ``id``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class DecisionAction(str, Enum):
    RETRY = "retry"
    CONTINUE = "continue"
    FAIL = "fail"
    CANCEL = "cancel"
    APPROVE_STAGE = "approve_stage"


@dataclass(frozen=True)
class Decision:
    id: str
    action: DecisionAction
    exp: str | None = None
    """The experiment (``<id>_s<seed>``) the decision is about; ``None`` for ``approve_stage``."""
    stage: int | None = None
    reason: str = ""
    by: str = ""
    at: str = ""
    source: str = ""
