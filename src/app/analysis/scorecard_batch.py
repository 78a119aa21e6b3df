"""A configured scorecard set over a page of accounts at once: `score_with_scorecard`, column by column with numpy.

`score_page` scores a page of raw records with the scorer's scorecards: each record's segment picks its scorecard,
and every scorecard scores its records with array operations (bands, curves, categories, penalties, missing-value
policies, rescaling, multipliers, churn and alert rules, coverage floor). The per-account engine stays the
reference: the same floating-point operations in the same order, conditions evaluated by `Condition.holds` itself
and Python's own `round` give identical scores (property-tested). A record with a signal that is not plainly valid,
a value its scorecard cannot map, or coverage below the floor is left to the per-account path (None), which names
what is wrong exactly as before. Derived signals (tenure, score trend) are computed per account, as there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from src.app.analysis.derived_signals import StoredScores
from src.app.analysis.health import CSMHealthScorer, comparable_previous, score_deltas, utc_moment
from src.app.analysis.health_batch import Flags, Floats, python_round, score_batch
from src.app.analysis.scorecard_columns import CardRows, FieldColumn, PageColumns
from src.app.analysis.scorecard_model import (
    COMPARATORS,
    RAGS,
    ChurnOutcome,
    ScorecardSet,
    ScorecardSpec,
    SignalSpec,
)
from src.app.analysis.scorecards import SCORE_MAX, SCORE_MIN, coverage_of
from src.app.schemas import ChurnRiskLevel, CSMHealthScore, StoredScore, trusted_score

_OUTCOMES: tuple[ChurnOutcome, ...] = ("none", "contract_proximity", "behavioral", "both")


def score_page(
    records: Sequence[Mapping[str, Any]],
    *,
    scorer: CSMHealthScorer,
    previous: Mapping[str, StoredScore],
    now: datetime,
    tz: ZoneInfo,
    history: Mapping[str, StoredScores] | None = None,
) -> list[CSMHealthScore | None]:
    """Score a page of records at once with the scorer's scorecards; None for a record left to the per-account path.

    Without configured scorecards this is `health_batch.score_batch`.

    Args:
        records: Raw account records, each with a non-empty string `account_id`.
        scorer: The health scorer.
        previous: Each account's last score, for deltas.
        now: The scan time (renewal countdowns, derived signals, the scores' `computed_at`).
        tz: The time zone in which contract end dates are read.
        history: Each account's recent scores, when a scorecard reads the score trend.
    """
    if scorer.scorecards is None:
        return score_batch(records, scorer=scorer, previous=previous, now=now, tz=tz)
    if not records:
        return []
    page = PageColumns(records, scorer=scorer, now=now, tz=tz, history=history or {})
    results: list[CSMHealthScore | None] = [None] * len(records)
    computed_at = utc_moment(now)
    for card, rows in _groups(page, scorer.scorecards):
        scored = _score_card(card, CardRows(page, rows), previous=previous, computed_at=computed_at)
        for row, score in zip(rows, scored, strict=True):
            results[row] = score
    return results


def _groups(page: PageColumns, scorecards: ScorecardSet) -> Iterator[tuple[ScorecardSpec, list[int]]]:
    """Each scorecard with the plainly valid rows whose segment (the first whose conditions all hold) selects it."""
    chosen = np.where(page.ok, -1, len(scorecards.segments))
    for index, segment in enumerate(scorecards.segments):
        match = chosen < 0
        for condition in segment.when:
            column = FieldColumn(page.values(condition.field))
            holds = column.holds(condition)
            chosen[match & column.failed] = len(scorecards.segments)  # where the reference would meet the error
            match &= holds & ~column.failed
        chosen[match] = index
    by_card: dict[str, list[int]] = {}
    for index, segment in enumerate(scorecards.segments):
        rows: list[int] = np.flatnonzero(chosen == index).tolist()
        if rows:
            by_card.setdefault(segment.scorecard, []).extend(rows)
    for name, rows in by_card.items():
        yield scorecards.scorecards[name], sorted(rows)


@dataclass(frozen=True, slots=True)
class _Pattern:
    """What one combination of observed signals gives: coverage, missing, kept signals and their rescaling."""

    coverage: float
    missing: list[str]
    kept: list[int]
    factor: float
    insufficient: bool


def _pattern(card: ScorecardSpec, observed: Sequence[bool]) -> _Pattern:
    """`score_with_scorecard`'s coverage, floor and rescaling for one combination of observed signals."""
    names = list(card.signals)
    seen = [name for name, flag in zip(names, observed, strict=True) if flag]
    coverage = coverage_of(seen, card)
    kept = [
        i
        for i, (flag, spec) in enumerate(zip(observed, card.signals.values(), strict=True))
        if flag or spec.missing != "exclude"
    ]
    available = sum(card.signals[names[i]].weight for i in kept)
    insufficient = round(coverage, 9) < card.coverage_floor or available <= 0
    factor = card.total_weight() / available if not insufficient and len(kept) < len(names) else 1.0
    missing = [name for name in names if name not in seen]
    return _Pattern(round(coverage, 4), missing, kept, factor, insufficient)


def _mapped(spec: SignalSpec, column: FieldColumn, ok: Flags) -> Floats:
    """A signal's points where its value is present (`_mapped` of the reference); clears `ok` where unmappable."""
    if spec.categories is not None:
        points, has = column.lookup(spec.categories)
        ok &= has | ~column.present
        return points
    numbers, not_number = column.numbers()
    ok &= ~not_number
    if spec.curve is not None:
        return _on_curve(numbers, spec.curve) * spec.weight
    points = np.full(numbers.shape, spec.else_points or 0.0)
    for band in reversed(spec.bands or ()):  # the first band that matches wins, as in the reference loop
        comparator, threshold = band.test()
        points = np.where(COMPARATORS[comparator](numbers, threshold), band.points, points)
    return points


def _on_curve(x: Floats, curve: tuple[tuple[float, float], ...]) -> Floats:
    """The curve's fraction at each x: the reference's interpolation, operation for operation."""
    fraction = np.full(x.shape, curve[-1][1])
    segments = list(zip(curve, curve[1:], strict=False))
    for (x0, y0), (x1, y1) in reversed(segments):
        fraction = np.where(x <= x1, y0 + (x - x0) * (y1 - y0) / (x1 - x0), fraction)
    return np.where(x <= curve[0][0], curve[0][1], fraction)


def _signal_points(spec: SignalSpec, name: str, group: CardRows, ok: Flags) -> tuple[Floats, Flags]:
    """A signal's points (NaN where missing and excluded) and where its raw field was observed."""
    column = group.column(spec.field or name)
    points = _mapped(spec, column, ok)
    if spec.missing != "exclude":
        neutral = spec.neutral_points if spec.missing == "neutral" and spec.neutral_points is not None else 0.0
        points = np.where(column.present, points, neutral)
    if spec.penalty is not None:
        numbers, _ = group.column(spec.penalty.field).numbers()
        units = np.where(np.isnan(numbers) | (numbers == 0.0), 0.0, numbers)  # `as_number(...) or 0.0`
        if spec.penalty.max_units is not None:
            units = np.where(spec.penalty.max_units < units, float(spec.penalty.max_units), units)
        penalised = points - units * spec.penalty.points_per_unit
        points = np.where(0.0 > penalised, 0.0, penalised)
    return points, column.present


def _score_card(
    card: ScorecardSpec, group: CardRows, *, previous: Mapping[str, StoredScore], computed_at: datetime
) -> list[CSMHealthScore | None]:
    """Each of the group's rows scored with one scorecard; None where the per-account path decides."""
    ok = np.ones(group.size, dtype=np.bool_)
    names = list(card.signals)
    with np.errstate(all="ignore"):  # rows left to the per-account path may hold NaN or infinities
        scored = [_signal_points(spec, name, group, ok) for name, spec in card.signals.items()]
        observed = np.stack([present for _, present in scored], axis=1)
        distinct, inverse = np.unique(observed, axis=0, return_inverse=True)
        patterns = [_pattern(card, flags) for flags in distinct.tolist()]
        which: list[int] = inverse.reshape(-1).tolist()
        kept = np.array([[i in p.kept for i in range(len(names))] for p in patterns], dtype=np.bool_)[which]
        ok &= ~np.array([p.insufficient for p in patterns], dtype=np.bool_)[which]
        factor = np.array([p.factor for p in patterns], dtype=np.float64)[which]
        points = [np.where(kept[:, i], values * factor, 0.0) for i, (values, _) in enumerate(scored)]
        total = np.zeros(group.size)
        for column in points:  # summed in the reference's order, from 0
            total = total + column
        removed: list[tuple[str, Floats, Flags]] = []
        for multiplier in card.multipliers:
            factors, has = group.column(multiplier.field).lookup(multiplier.factors)
            reduced = total * factors
            removed.append((multiplier.breakdown_key, reduced - total, has))
            total = np.where(has, reduced, total)
        clamped = np.where(0.0 > total, SCORE_MIN, total)
        clamped = np.where(SCORE_MAX < clamped, SCORE_MAX, clamped)
        ok &= np.isfinite(clamped) & np.all(np.isfinite(np.stack(points)), axis=0)
        for _, change, has in removed:
            ok &= ~has | np.isfinite(change)
    rag = np.where(clamped >= card.rag.green, 0, np.where(clamped >= card.rag.amber, 1, 2))
    levels, triggers, alerts = _churn_and_alert(card, group, rag)
    ok &= ~group.failed()
    scores = python_round(clamped).tolist()
    rags: list[int] = rag.tolist()
    breakdown_columns = [python_round(column).tolist() for column in points]
    multiplier_columns = [(key, python_round(change).tolist(), has.tolist()) for key, change, has in removed]
    results: list[CSMHealthScore | None] = []
    for row, fine in enumerate(ok.tolist()):
        if not fine:
            results.append(None)
            continue
        pattern = patterns[which[row]]
        breakdown = {names[i]: breakdown_columns[i][row] for i in pattern.kept}
        for key, change_column, applied in multiplier_columns:
            if applied[row]:
                breakdown[key] = change_column[row]
        account_id = str(group.page.records[group.rows[row]]["account_id"])
        before = comparable_previous(previous.get(account_id), card)
        results.append(
            trusted_score(
                {
                    "account_id": account_id,
                    "score": scores[row],
                    "rag": RAGS[rags[row]],
                    "churn_risk_level": levels[row],
                    "churn_triggered_by": triggers[row],
                    "signal_breakdown": breakdown,
                    "computed_at": computed_at,
                    "previous_score": None if before is None else before.score,
                    "signal_deltas": {} if before is None else score_deltas(breakdown, before.signal_breakdown),
                    "coverage": pattern.coverage,
                    "missing_signals": list(pattern.missing),
                    "scorecard_name": card.name,
                    "scorecard_version": card.version,
                    "alert_rule": alerts[row],
                }
            )
        )
    return results


def _churn_and_alert(
    card: ScorecardSpec, group: CardRows, rag: npt.NDArray[np.intp]
) -> tuple[list[ChurnRiskLevel], list[str | None], list[bool]]:
    """Per row, the churn risk level and trigger (`churn_outcome`) and whether the alert rule fires."""
    outcome = np.zeros(group.size, dtype=np.intp)
    triggers = ((1, card.churn.contract_proximity), (2, card.churn.behavioral))
    for bit, trigger in triggers:
        if trigger is None:
            continue
        fired = np.isin(rag, [RAGS.index(r) for r in trigger.rag_in])
        for condition in trigger.conditions:
            fired &= group.column(condition.field).holds(condition)
        outcome |= np.where(fired, bit, 0)
    table = [card.churn.levels[name][r] for name in _OUTCOMES for r in RAGS]
    codes: list[int] = (outcome * 3 + rag).tolist()
    levels = [table[code] for code in codes]
    rule = card.alert
    alert = np.isin(rag, [RAGS.index(r) for r in rule.rag_in])
    alert |= np.array([level in rule.churn_risk_in for level in levels], dtype=np.bool_)
    for condition in rule.conditions_any:
        alert |= group.column(condition.field).holds(condition)
    named: list[str | None] = [None if code < 3 else _OUTCOMES[code // 3] for code in codes]
    return levels, named, alert.tolist()
