"""``experiments/results/pilot_synthesis.md`` (pure): every pilot comparison against the best
baseline, each pass criterion, and the PROCEED / ITERATE / ROLLBACK recommendation with its evidence.

Where things come from:

* Comparisons: every design table whose phase is a pilot (``phase`` contains ``pilot``). In each
  column (a dataset, with its metric and direction), each row of group ``main`` or ``ours`` is
  compared with the **best baseline row** of that column: the baseline row with the best *mean over
  seeds* (direction-aware). The seed compared each run with the maximum of all baseline rows of
  every seed (the luckiest seed of any baseline) and assumed higher is better; both fixed.
* Pass criteria (pilot.md §4 of the seed), with ``Δ`` = ours - baseline, sign flipped for
  ``direction: lower`` so that a positive Δ is always an improvement:
  1. ``Δ ≥ min_improvement`` (default 0.01 in the metric's units: one point on a 0-1 scale, the
     seed's "at least 1 %");
  2. ``Δ > 2 x std(ours)`` (sample std over our seeds; fails with fewer than 2 seeds);
  3. ``Δ ≥ noise floor``: ``Criteria.noise_floor`` when given, else the measured inter-seed sample
     std of the best baseline. The seed took it "from the literature", a value no file holds.
* A cell whose ``purpose`` mentions ``parity`` claims parity instead (the seed's "or parity, when
  the claim is efficiency"): it passes when Δ ≥ -max(min_improvement, noise floor).
* The core comparison: a design cell whose ``purpose`` mentions ``core`` (the seed's "Pilot 1:
  core mechanism"); ``optional`` in the purpose leaves a comparison out of the decision.
* Decision, first match wins: the core comparison fails → ROLLBACK; at least half of the other
  comparisons pass → PROCEED; every failure has one cause (the first criterion it fails) →
  ITERATE; else ROLLBACK. Comparisons without a value on either side are listed and left out; an
  incomplete core gives no recommendation. The seed's fifth rule ("the majority fail → ROLLBACK")
  can never match after the first four and is dropped. The root cause here is mechanical (which
  criterion failed); the file leaves the final call to a person (checkboxes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.export.guard import Completeness
from reconciler.export.render import fmt
from reconciler.export.tables import CellView, TableView
from reconciler.model.design import DesignCol

SYNTHESIS = "experiments/results/pilot_synthesis.md"
PROCEED, ITERATE, ROLLBACK, UNDECIDED = "PROCEED", "ITERATE", "ROLLBACK", "NO DECISION"
OURS_GROUPS = ("main", "ours")


@dataclass(frozen=True)
class Criteria:
    min_improvement: float = 0.01
    std_factor: float = 2.0
    noise_floor: float | None = None
    """``None``: the best baseline's measured inter-seed std."""


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Comparison:
    table: str
    row_label: str
    col: DesignCol
    cell: CellView
    baseline_label: str | None
    baseline: CellView | None
    delta: float | None
    checks: tuple[Check, ...]
    core: bool
    optional: bool

    @property
    def complete(self) -> bool:
        return self.delta is not None

    @property
    def passed(self) -> bool:
        return self.complete and all(c.passed for c in self.checks)

    @property
    def cause(self) -> str | None:
        for c in self.checks:
            if not c.passed:
                return c.name
        return None


@dataclass(frozen=True)
class Synthesis:
    recommendation: str
    evidence: tuple[str, ...]
    comparisons: tuple[Comparison, ...]


def pilot_tables(views: Sequence[TableView]) -> list[TableView]:
    return [v for v in views if "pilot" in v.phase.lower() or "pilot" in v.name.lower()]


def compare(views: Sequence[TableView], criteria: Criteria = Criteria()) -> list[Comparison]:
    out = []
    for view in pilot_tables(views):
        for col in view.cols:
            base_row, base = _best_baseline(view, col)
            for row in view.rows:
                cell = view.cell(row.id, col.id)
                if row.group not in OURS_GROUPS or cell is None:
                    continue
                out.append(_comparison(view, row.label or row.id, col, cell, base_row, base, criteria))
    return out


def _best_baseline(view: TableView, col: DesignCol) -> tuple[str | None, CellView | None]:
    best: tuple[str | None, CellView | None] = (None, None)
    for row in view.rows:
        cell = view.cell(row.id, col.id)
        if row.group != "baseline" or cell is None or cell.mean is None:
            continue
        current = best[1]
        if current is None or current.mean is None or _better(cell.mean, current.mean, col.direction):
            best = (row.label or row.id, cell)
    return best


def _better(a: float, b: float, direction: str) -> bool:
    return a < b if direction == "lower" else a > b


def _comparison(
    view: TableView,
    label: str,
    col: DesignCol,
    cell: CellView,
    base_label: str | None,
    base: CellView | None,
    criteria: Criteria,
) -> Comparison:
    purpose = cell.purpose.lower()
    delta: float | None = None
    checks: list[Check] = []
    if cell.mean is not None and base is not None and base.mean is not None:
        delta = cell.mean - base.mean if col.direction != "lower" else base.mean - cell.mean
        floor = criteria.noise_floor if criteria.noise_floor is not None else base.std
        checks = _parity(delta, floor, criteria) if "parity" in purpose else _beats(delta, cell, base, floor, criteria)
    return Comparison(
        table=view.name,
        row_label=label,
        col=col,
        cell=cell,
        baseline_label=base_label,
        baseline=base,
        delta=delta,
        checks=tuple(checks),
        core="core" in purpose,
        optional="optional" in purpose,
    )


def _beats(delta: float, cell: CellView, base: CellView, floor: float | None, criteria: Criteria) -> list[Check]:
    checks = [Check("min_improvement", delta >= criteria.min_improvement, f"Δ ≥ {fmt(criteria.min_improvement)}")]
    if cell.std is None:
        checks.append(Check("within_noise", False, f"needs ≥ 2 seeds of ours (has {cell.n})"))
    else:
        bound = criteria.std_factor * cell.std
        checks.append(Check("within_noise", delta > bound, f"Δ > {criteria.std_factor:g} std = {fmt(bound)}"))
    if floor is None:
        checks.append(Check("noise_floor", False, f"no noise floor: baseline has {base.n} seed(s)"))
    else:
        checks.append(Check("noise_floor", delta >= floor, f"Δ ≥ floor {fmt(floor)}"))
    return checks


def _parity(delta: float, floor: float | None, criteria: Criteria) -> list[Check]:
    """A parity claim (the seed: "or parity, when the claim is efficiency"): not worse than the
    baseline by more than the larger of ``min_improvement`` and the noise floor."""
    tolerance = max(criteria.min_improvement, floor or 0.0)
    return [Check("parity", delta >= -tolerance, f"Δ ≥ -{fmt(tolerance)} (parity)")]


def decide(comparisons: Sequence[Comparison]) -> tuple[str, list[str]]:
    """The recommendation and the evidence lines behind it (first matching rule wins)."""
    counted = [c for c in comparisons if not c.optional]
    usable = [c for c in counted if c.complete]
    if not counted:
        return UNDECIDED, ["no pilot comparison: a pilot design table needs a baseline row and a main/ours row"]
    cores = [c for c in counted if c.core]
    evidence = []
    if any(not c.complete for c in cores):
        names = ", ".join(c.cell.design_id for c in cores if not c.complete)
        return UNDECIDED, [f"the core comparison has no result yet ({names})"]
    if not usable:
        return UNDECIDED, ["no comparison has results on both sides yet"]
    failed_core = [c for c in cores if not c.passed]
    if failed_core:
        for c in failed_core:
            evidence.append(f"core comparison {c.cell.design_id} fails: {_cause_text(c)}")
        return ROLLBACK, evidence
    for c in cores:
        evidence.append(f"core comparison {c.cell.design_id} passes (Δ = {_signed(c.delta)})")
    others = [c for c in usable if not c.core]
    passed = [c for c in others if c.passed]
    failed = [c for c in others if not c.passed]
    evidence.append(f"{len(passed)} of {len(others)} other comparisons pass")
    if not others or 2 * len(passed) >= len(others):
        return PROCEED, evidence
    causes = sorted({c.cause or "" for c in failed})
    for c in failed:
        evidence.append(f"{c.cell.design_id} fails: {_cause_text(c)}")
    if len(causes) == 1:
        evidence.append(f"every failure has one cause: {causes[0]}")
        return ITERATE, evidence
    evidence.append(f"failures have {len(causes)} causes: {', '.join(causes)}")
    return ROLLBACK, evidence


def synthesize(views: Sequence[TableView], criteria: Criteria = Criteria()) -> Synthesis:
    comparisons = compare(views, criteria)
    recommendation, evidence = decide(comparisons)
    return Synthesis(recommendation, tuple(evidence), tuple(comparisons))


def _cause_text(c: Comparison) -> str:
    for check in c.checks:
        if not check.passed:
            return f"{check.name} (Δ = {_signed(c.delta)}; want {check.detail})"
    return "passes"


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def _value(cell: CellView | None) -> str:
    if cell is None or cell.mean is None:
        return "—" if cell is None else f"— ({cell.status})"
    text = fmt(cell.mean)
    if cell.std is not None:
        text += f" ± {fmt(cell.std)}"
    return f"{text} (n={cell.n})"


def _has(c: Comparison, name: str) -> bool:
    return any(check.name == name for check in c.checks)


def _mark(c: Comparison, name: str) -> str:
    for check in c.checks:
        if check.name == name:
            return ("✓ " if check.passed else "✗ ") + check.detail
    return "—"


def markdown(synthesis: Synthesis, completeness: Completeness, criteria: Criteria, revision: str | None) -> str:
    comps = synthesis.comparisons
    complete = [c for c in comps if c.complete]
    lines = [
        "# Pilot synthesis",
        "",
        "Written by `reconcile export` from the pilot design tables, `dispatch/state.json` and the result"
        f" files (desired state {revision[:12] if revision else 'working tree'}); do not edit.",
        "",
        "## Overview",
        "",
        f"- Comparisons: {len(comps)} ({sum(c.passed for c in comps)} pass,"
        f" {sum(c.complete and not c.passed for c in comps)} fail, {len(comps) - len(complete)} without results)",
        f"- Runs: {completeness.summary()}",
    ]
    if complete:
        best = max(complete, key=lambda c: c.delta if c.delta is not None else float("-inf"))
        lines.append(
            f"- Best result: {best.row_label} on {best.col.label} ({best.col.metric}),"
            f" Δ = {_signed(best.delta)} against {best.baseline_label}"
        )
    lines += [
        "",
        "## Results",
        "",
        "| Cell | Purpose | Dataset | Metric | Method | Ours | Best baseline | Δ |"
        " ≥ min Δ | > 2 std (ours) | ≥ noise floor (or parity) | Pass? |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in comps:
        arrow = "↓" if c.col.direction == "lower" else "↑"
        role = " (core)" if c.core else " (optional)" if c.optional else ""
        base = f"{c.baseline_label}: {_value(c.baseline)}" if c.baseline_label else "— (no baseline value)"
        verdict = "PASS" if c.passed else "FAIL" if c.complete else "n/a"
        cells = [
            c.cell.design_id + role,
            c.cell.purpose,
            c.col.label,
            f"{c.col.metric} {arrow}",
            c.row_label,
            _value(c.cell),
            base,
            _signed(c.delta),
            _mark(c, "min_improvement"),
            _mark(c, "within_noise"),
            _mark(c, "noise_floor") if not _has(c, "parity") else _mark(c, "parity"),
            verdict,
        ]
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
    floor = "the best baseline's inter-seed std" if criteria.noise_floor is None else fmt(criteria.noise_floor)
    lines += [
        "",
        "## Criteria",
        "",
        f"A comparison passes when Δ (ours - best baseline, sign flipped where lower is better) is at least"
        f" {fmt(criteria.min_improvement)}, more than {criteria.std_factor:g} x the std of our seeds, and at"
        f" least the noise floor ({floor}); a parity cell passes when Δ is at least minus the larger of the two"
        " thresholds. The best baseline is the baseline row with the best mean over"
        " seeds in that column.",
        "",
        "## Failures by cause",
        "",
    ]
    causes: dict[str, list[str]] = {}
    for c in comps:
        if c.complete and not c.passed:
            causes.setdefault(c.cause or "", []).append(c.cell.design_id)
    if causes:
        lines += [f"- {cause}: {', '.join(ids)}" for cause, ids in sorted(causes.items())]
    else:
        lines.append("- none")
    lines += ["", "## Incomplete runs", ""]
    lines += [f"- {line}" for line in completeness.lines()] or ["- none"]
    lines += ["", f"## Recommendation: **{synthesis.recommendation}**", ""]
    lines += [f"- {e}" for e in synthesis.evidence]
    if not completeness.complete:
        lines.append("- provisional: exported with --allow-partial while runs were incomplete (above)")
    lines += [
        "",
        "Decision (a person ticks one):",
        "",
        "- [ ] PROCEED to the full experiments",
        "- [ ] ITERATE on the method (one diagnosable cause)",
        "- [ ] ROLLBACK the idea",
    ]
    return "\n".join(lines) + "\n"
