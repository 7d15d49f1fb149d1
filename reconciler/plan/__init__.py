"""The pure planner: ``make_plan(desired, recorded, observed, now) -> Plan`` and
``fold(plan, results, desired, now) -> StateFile``. No I/O, no clock, no git, no backends."""

from __future__ import annotations

from reconciler.plan.core import Plan, make_plan
from reconciler.plan.events import Event, events, subject
from reconciler.plan.fold import fold

__all__ = ["Event", "Plan", "events", "fold", "make_plan", "subject"]
