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
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from annotated_types import Ge, Gt, Le, Lt
from pydantic.fields import FieldInfo

from src.app.analysis.derived_signals import StoredScores, derived_values, same_scorecard
from src.app.analysis.health import CSMHealthScorer, comparable_previous, score_deltas, utc_moment
from src.app.analysis.health_batch import EXACT_INT, RAGS, as_floats, python_round, score_batch
from src.app.analysis.scorecard_model import (
    COMPARATORS,
    ChurnOutcome,
    Condition,
    ScorecardSet,
    ScorecardSpec,
    SignalSpec,
    as_number,
)
from src.app.analysis.scorecards import SCORE_MAX, SCORE_MIN, coverage_of
from src.app.analysis.signals import days_until
from src.app.schemas import ChurnRiskLevel, CSMHealthScore, CSMHealthSignals, StoredScore, trusted_score

Floats = npt.NDArray[np.float64]
Flags = npt.NDArray[np.bool_]


_OUTCOMES: tuple[ChurnOutcome, ...] = ("none", "contract_proximity", "behavioral", "both")
_BOUNDS: tuple[tuple[type, str, str], ...] = (
    (Ge, "ge", "at_least"),
    (Gt, "gt", "above"),
    (Le, "le", "at_most"),
    (Lt, "lt", "below"),
)


@dataclass(frozen=True, slots=True)
class _Rule:
    """Which values of one `CSMHealthSignals` field are plainly valid: exact types, allowed texts, bounds."""

    kinds: frozenset[type]
    choices: frozenset[str] | None
    bounds: tuple[tuple[str, float], ...]
    as_float: bool


def _rule(info: FieldInfo) -> _Rule:
    """The plain-validity rule of a signal field; a field of an unforeseen kind accepts no value plainly."""
    annotation: Any = info.annotation
    members = (
        [arg for arg in get_args(annotation) if arg is not NoneType]
        if get_origin(annotation) in (Union, UnionType)
        else [annotation]
    )
    bounds = [
        (comparator, float(getattr(constraint, attribute)))
        for constraint in info.metadata
        for kind, attribute, comparator in _BOUNDS
        if isinstance(constraint, kind)
    ]
    if len(members) != 1 or len(bounds) != len(info.metadata):
        return _Rule(frozenset(), None, (), as_float=False)
    member = members[0]
    if get_origin(member) is Literal and all(type(arg) is str for arg in get_args(member)) and not bounds:
        return _Rule(frozenset({str}), frozenset(get_args(member)), (), as_float=False)
    if member is float:
        return _Rule(frozenset({int, float}), None, tuple(bounds), as_float=True)
    if member is int:
        return _Rule(frozenset({int}), None, tuple(bounds), as_float=False)
    return _Rule(frozenset(), None, (), as_float=False)


_RULES: dict[str, _Rule] = {name: _rule(info) for name, info in CSMHealthSignals.model_fields.items()}


class _Column:
    """One field's values over a group of records (None where missing), read the ways a scorecard reads them.

    `failed` marks the rows where reading a value raised (an integer too large for a float or for text): the
    per-account path reports those.
    """

    def __init__(self, values: list[Any]) -> None:
        self.values = values
        self.present: Flags = np.fromiter((value is not None for value in values), np.bool_, len(values))
        self.failed: Flags = np.zeros(len(values), dtype=np.bool_)
        self._numbers: tuple[Floats, Flags] | None = None

    def numbers(self) -> tuple[Floats, Flags]:
        """`as_number` of each value (NaN where missing or not a number), and where a present value is not one."""
        if self._numbers is None:
            self._numbers = self._as_numbers()
        return self._numbers

    def _as_numbers(self) -> tuple[Floats, Flags]:
        numbers: Floats | None = None
        if set(map(type, self.values)) <= {int, float, NoneType}:
            try:
                numbers = np.array(self.values, dtype=np.float64)  # None becomes NaN
            except OverflowError:
                numbers = None
        if numbers is None:
            converted: list[float | None] = []
            for row, value in enumerate(self.values):
                try:
                    converted.append(as_number(value))
                except OverflowError:  # an integer beyond float64
                    converted.append(None)
                    self.failed[row] = True
            numbers = np.array(converted, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(numbers)
        return np.where(finite, numbers, np.nan), self.present & ~finite

    def lookup(self, table: Mapping[str, float]) -> tuple[Floats, Flags]:
        """Each present value's entry in a table keyed by `str(value)` (0 where none), and where there is one."""
        if set(map(type, self.values)) <= {str, NoneType}:
            found = [None if value is None else table.get(value) for value in self.values]
        else:
            found = []
            for row, value in enumerate(self.values):
                try:
                    found.append(None if value is None else table.get(str(value)))
                except ValueError:  # an integer too long for text
                    found.append(None)
                    self.failed[row] = True
        has = np.fromiter((entry is not None for entry in found), np.bool_, len(found))
        return np.array([0.0 if entry is None else entry for entry in found], dtype=np.float64), has

    def holds(self, condition: Condition) -> Flags:
        """`condition.holds` for each value, decided once per distinct value."""
        try:
            keys = [(type(value), value) for value in self.values]
            known = {key: _decided(condition, key[1]) for key in set(keys)}
            decided = [known[key] for key in keys]
        except TypeError:  # an unhashable value: each is decided on its own
            decided = [_decided(condition, value) for value in self.values]
        self.failed |= np.fromiter((result is None for result in decided), np.bool_, len(decided))
        return np.fromiter((result is True for result in decided), np.bool_, len(decided))


def _decided(condition: Condition, value: Any) -> bool | None:
    """Whether the condition holds for the value; None when deciding raised (the per-account path reports it)."""
    try:
        return condition.holds({condition.field: value})
    except Exception:
        return None


class _Page:
    """A page's records as the per-account path merges them: validated signals over the raw (and derived) fields."""

    def __init__(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        scorer: CSMHealthScorer,
        now: datetime,
        tz: ZoneInfo,
        history: Mapping[str, StoredScores],
    ) -> None:
        self.records = records
        self.ok: Flags = np.ones(len(records), dtype=np.bool_)
        self.signals: dict[str, list[Any]] = {}
        for name, rule in _RULES.items():
            raw = [record.get(name) for record in records]
            if name == "days_to_renewal":
                raw = self._with_renewal_from_contract(raw, now=now, tz=tz)
            self.signals[name] = self._checked(raw, rule)
        self.derived = self._derived(scorer, now=now, history=history) if scorer.derived_fields else None
        self._values: dict[str, list[Any]] = {}

    def _with_renewal_from_contract(self, raw: list[Any], *, now: datetime, tz: ZoneInfo) -> list[Any]:
        """`days_to_renewal` as `signals_from_record` derives it from `contract_end_date` when a record has none."""
        derived = list(raw)
        known: dict[str, int | None] = {}  # a page's accounts share many contract end dates
        for row, (value, record) in enumerate(zip(raw, self.records, strict=True)):
            end = record.get("contract_end_date")
            if value is not None or end is None:
                continue
            try:
                days = known[end] if type(end) is str and end in known else days_until(end, now=now, tz=tz)
            except (TypeError, ValueError):
                self.ok[row] = False  # the per-account path names the bad date
                continue
            if type(end) is str:
                known[end] = days
            derived[row] = days
        return derived

    def _checked(self, raw: list[Any], rule: _Rule) -> list[Any]:
        """The field's values as `CSMHealthSignals` validates them; a value not plainly valid fails its record."""
        types = set(map(type, raw)) - {NoneType}
        if rule.choices is not None:
            if types <= rule.kinds and set(raw) <= rule.choices | {None}:
                return raw
            plain = [value is None or (type(value) is str and value in rule.choices) for value in raw]
        elif types <= rule.kinds:
            plain = self._in_bounds(raw, rule)
        else:  # a bool, a string...: that record scores per account
            typed = [value if type(value) in rule.kinds else None for value in raw]
            plain = [
                fine and (value is None) == (kept is None)
                for value, kept, fine in zip(raw, typed, self._in_bounds(typed, rule), strict=True)
            ]
        if not all(plain):
            self.ok &= np.array(plain, dtype=np.bool_)
            raw = [value if fine else None for value, fine in zip(raw, plain, strict=True)]
        if rule.as_float and int in types:
            raw = [float(value) if type(value) is int else value for value in raw]
        return raw

    def _in_bounds(self, raw: list[Any], rule: _Rule) -> list[bool]:
        """Per value of plain types, whether it is exact as a float, finite and within the field's bounds."""
        present = np.fromiter((value is not None for value in raw), np.bool_, len(raw))
        numbers = as_floats(raw)
        with np.errstate(invalid="ignore"):
            within = np.abs(numbers) < EXACT_INT  # False for NaN and infinities
            for comparator, threshold in rule.bounds:
                within &= COMPARATORS[comparator](numbers, threshold)
        plain: list[bool] = (~present | within).tolist()
        return plain

    def _derived(
        self, scorer: CSMHealthScorer, *, now: datetime, history: Mapping[str, StoredScores]
    ) -> list[dict[str, Any]]:
        """Each record's derived signals, as `score_record` computes them (history of its raw record's scorecard)."""
        found: list[dict[str, Any]] = []
        for row, record in enumerate(self.records):
            try:
                card = scorer.scorecard_for(record)
                past = same_scorecard(history.get(str(record["account_id"]), ()), (card.name, card.version))
                found.append(derived_values(record, scorer.derived_fields, as_of=now, history=past))
            except Exception:  # the per-account path reports it
                self.ok[row] = False
                found.append({})
        return found

    def values(self, field: str) -> list[Any]:
        """A field's merged values over the whole page, read once."""
        values = self._values.get(field)
        if values is None:
            values = self._values[field] = self._merged(field)
        return values

    def _merged(self, field: str) -> list[Any]:
        if field in self.signals:
            return self.signals[field]
        if self.derived is None:
            return [record.get(field) for record in self.records]
        return [
            extra[field] if field in extra else record.get(field)
            for record, extra in zip(self.records, self.derived, strict=True)
        ]


class _Group:
    """The rows of a page that one scorecard scores, with each field's column read once."""

    def __init__(self, page: _Page, rows: list[int]) -> None:
        self.page = page
        self.rows = rows
        self.size = len(rows)
        self._whole = rows == list(range(len(page.records)))
        self._columns: dict[str, _Column] = {}

    def column(self, field: str) -> _Column:
        """The field's merged values over these rows."""
        column = self._columns.get(field)
        if column is None:
            values = self.page.values(field)
            column = self._columns[field] = _Column(values if self._whole else [values[row] for row in self.rows])
        return column

    def failed(self) -> Flags:
        """The rows where reading any of the columns read so far raised."""
        failed = np.zeros(self.size, dtype=np.bool_)
        for column in self._columns.values():
            failed |= column.failed
        return failed


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
    page = _Page(records, scorer=scorer, now=now, tz=tz, history=history or {})
    results: list[CSMHealthScore | None] = [None] * len(records)
    computed_at = utc_moment(now)
    for card, rows in _groups(page, scorer.scorecards):
        scored = _score_card(card, _Group(page, rows), previous=previous, computed_at=computed_at)
        for row, score in zip(rows, scored, strict=True):
            results[row] = score
    return results


def _groups(page: _Page, scorecards: ScorecardSet) -> Iterator[tuple[ScorecardSpec, list[int]]]:
    """Each scorecard with the plainly valid rows whose segment (the first whose conditions all hold) selects it."""
    chosen = np.where(page.ok, -1, len(scorecards.segments))
    for index, segment in enumerate(scorecards.segments):
        match = chosen < 0
        for condition in segment.when:
            column = _Column(page.values(condition.field))
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


def _mapped(spec: SignalSpec, column: _Column, ok: Flags) -> Floats:
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


def _signal_points(spec: SignalSpec, name: str, group: _Group, ok: Flags) -> tuple[Floats, Flags]:
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
    card: ScorecardSpec, group: _Group, *, previous: Mapping[str, StoredScore], computed_at: datetime
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
    card: ScorecardSpec, group: _Group, rag: npt.NDArray[np.intp]
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
