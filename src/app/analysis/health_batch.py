"""The seed scorer over a page of accounts at once: `CSMHealthScorer.score`, column by column with numpy.

`score_batch` takes raw account records. A record whose signals are all plainly valid (numbers of the right
type within range, known categories, required signals present) is scored here with array operations; every
other record is left to the per-account path (`analysis.scan.score_record`), which names what is wrong with it
exactly as before. The per-account scorer stays the reference: the same floating-point operations in the same
order, Python's own `round`, and thresholds on the unrounded score give identical scores (property-tested).
This is the default (unconfigured) scorecard; a configured `CSM_SCORECARD` is scored at once by `scorecard_batch`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from itertools import repeat
from typing import Any, get_args
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from src.app.analysis.health import (
    SCORE_MAX,
    SCORE_MIN,
    Bands,
    CSMHealthScorer,
    score_deltas,
    utc_moment,
)
from src.app.analysis.scorecard_model import RAGS
from src.app.analysis.signals import EXACT_INT, days_until, field_columns
from src.app.schemas import (
    CollectionsRisk,
    CSMHealthScore,
    Engagement,
    InvoiceStatus,
    Rag,
    StoredScore,
    TicketSentiment,
    UsageTrend,
    trusted_score,
)

Floats = npt.NDArray[np.float64]
Flags = npt.NDArray[np.bool_]
Codes = npt.NDArray[np.intp]
_Outcome = tuple[Rag, str, str | None, bool]
"""An account's RAG, churn risk level, churn trigger and whether it alerts."""


_NUMBERS: dict[str, tuple[bool, float | None, float | None, bool]] = {
    # field: (integer, lowest, highest, required); the constraints of `CSMHealthSignals`
    "feature_adoption_rate": (False, 0, 1, True),
    "login_frequency_days": (True, 0, None, False),
    "days_since_last_interaction": (True, 0, None, False),
    "nps_score": (True, 0, 10, False),
    "days_to_renewal": (True, None, None, False),
    "seats_utilization_rate": (False, 0, 2, True),
    "open_ticket_count": (True, 0, None, False),
    "escalation_count_90_days": (True, 0, None, False),
}
_CATEGORIES: dict[str, tuple[tuple[str, ...], bool]] = {
    # field: (allowed values, required)
    "usage_trend": (get_args(UsageTrend), True),
    "stakeholder_engagement": (get_args(Engagement), True),
    "invoice_payment_status": (get_args(InvoiceStatus), True),
    "avg_ticket_sentiment": (get_args(TicketSentiment), False),
    "tam_health_rag": (get_args(Rag), False),
    "collections_risk": (get_args(CollectionsRisk), False),
}
_DEFAULTS: dict[str, Any] = {"open_ticket_count": 0, "escalation_count_90_days": 0, "avg_ticket_sentiment": "neutral"}
_READ: tuple[str, ...] = ("account_id", *_NUMBERS, *_CATEGORIES, "contract_end_date")
"""The record fields a page's scores read."""


class _Columns:
    """One page's signals as arrays, with which rows are plainly valid and which values were observed."""

    def __init__(self, records: Sequence[Mapping[str, Any]], *, now: datetime, tz: ZoneInfo) -> None:
        size = len(records)
        self.ok: Flags = np.ones(size, dtype=np.bool_)
        self.observed: dict[str, Flags] = {}
        self.numbers: dict[str, Floats] = {}
        self.codes: dict[str, Codes] = {}
        values = field_columns(records, _READ)
        self.account_ids: list[str] = list(map(str, values["account_id"]))
        for name, (integer, low, high, required) in _NUMBERS.items():
            raw = values[name]
            if name == "days_to_renewal":
                raw = _with_renewal_from_contract(raw, values["contract_end_date"], self.ok, now=now, tz=tz)
            self._number(name, raw, integer=integer, low=low, high=high, required=required)
        for name, (allowed, required) in _CATEGORIES.items():
            self._category(name, values[name], allowed, required=required)

    def _number(
        self, name: str, raw: Sequence[Any], *, integer: bool, low: float | None, high: float | None, required: bool
    ) -> None:
        kinds = (int,) if integer else (int, float)
        if not set(map(type, raw)) <= {*kinds, type(None)}:  # a bool, a string...: that account scores per account
            self.ok &= np.fromiter((value is None or type(value) in kinds for value in raw), np.bool_, len(raw))
            raw = [value if type(value) in kinds else None for value in raw]
        numbers = as_floats(raw)
        present = ~np.isnan(numbers)  # a NaN given for a float signal is out of range: it scores per account
        within = np.abs(numbers) < EXACT_INT  # False for NaN and infinities
        if low is not None:
            within &= numbers >= low
        if high is not None:
            within &= numbers <= high
        default = _DEFAULTS.get(name)
        if default is not None:
            numbers = np.where(present, numbers, float(default))
        self.ok &= np.where(present, within, not required)
        self.observed[name] = present
        self.numbers[name] = numbers

    def _category(self, name: str, raw: Sequence[Any], allowed: tuple[str, ...], *, required: bool) -> None:
        absent = len(allowed)
        index: dict[Any, int] = {value: code for code, value in enumerate(allowed)} | {None: absent}
        try:
            codes = np.fromiter(map(index.get, raw, repeat(-1)), np.intp, len(raw))
        except TypeError:  # an unhashable value: that account scores per account
            codes = np.array([index.get(v, -1) if v is None or type(v) is str else -1 for v in raw], dtype=np.intp)
        present = codes != absent
        self.ok &= codes >= 0
        if required:
            self.ok &= present
        default = _DEFAULTS.get(name)
        self.observed[name] = present
        self.codes[name] = np.where(codes >= 0, codes, absent)
        if default is not None:
            self.codes[name] = np.where(present, self.codes[name], allowed.index(default))


def _with_renewal_from_contract(
    raw: Sequence[Any], ends: Sequence[Any], ok: Flags, *, now: datetime, tz: ZoneInfo
) -> list[Any]:
    """`days_to_renewal` as `signals_from_record` derives it from `contract_end_date` when the record has none."""
    derived = list(raw)
    known: dict[Any, int | None] = {}  # a page's accounts share many contract end dates
    for row, (value, end) in enumerate(zip(raw, ends, strict=True)):
        if value is not None or end is None:
            continue
        try:
            days = known[end] if type(end) is str and end in known else days_until(end, now=now, tz=tz)
        except (TypeError, ValueError):
            ok[row] = False  # the per-account path names the bad date
            continue
        if type(end) is str:
            known[end] = days
        derived[row] = days
    return derived


def _at_most(values: Floats, observed: Flags, bands: Bands, beyond: float, unknown: float) -> Floats:
    points = np.full(values.shape, beyond)
    for limit, band_points in reversed(bands):  # the first band that matches wins, as in the reference loop
        points = np.where(values <= limit, band_points, points)
    return np.where(observed, points, unknown)


def _at_least(values: Floats, observed: Flags, bands: Bands, below: float, unknown: float) -> Floats:
    points = np.full(values.shape, below)
    for floor, band_points in reversed(bands):
        points = np.where(values >= floor, band_points, points)
    return np.where(observed, points, unknown)


def _more_than(values: Floats, observed: Flags, bands: Bands, below: float, unknown: float) -> Floats:
    points = np.full(values.shape, below)
    for floor, band_points in reversed(bands):
        points = np.where(values > floor, band_points, points)
    return np.where(observed, points, unknown)


def _table(points: Mapping[Any, float], allowed: tuple[str, ...]) -> Floats:
    """Points by category code (and 0 for the absent code, one past the values)."""
    return np.array([*(points[value] for value in allowed), 0.0], dtype=np.float64)


def as_floats(raw: Sequence[Any]) -> Floats:
    """Numbers (int or float) and None as float64, None as NaN; an integer beyond float64's range becomes NaN too."""
    try:
        return np.array(raw, dtype=np.float64)
    except OverflowError:
        return np.array([None if v is not None and abs(v) >= EXACT_INT else v for v in raw], dtype=np.float64)


def python_round(values: Floats) -> Floats:
    """`round(value, 2)` of each value exactly as Python rounds it (numpy's `round` differs near halves).

    Python rounds the exact binary value to a whole number of hundredths k and returns the float nearest k / 100,
    which IEEE division gives. `rint(value * 100)` is that k unless the product lies within its rounding error
    of a half (or is huge, infinite or NaN): those few values are rounded by Python itself.
    """
    with np.errstate(all="ignore"):
        scaled = values * 100.0
        rounded = np.rint(scaled) / 100.0
        half_gap = np.abs(scaled - np.floor(scaled) - 0.5)
        sure = (half_gap > np.abs(scaled) * 2.0**-50) & (np.abs(scaled) < 2.0**52)  # False for NaN and infinities
    for index in np.flatnonzero(~sure.reshape(-1)).tolist():
        rounded.flat[index] = round(float(values.flat[index]), 2)
    return rounded


def _points(scorer: CSMHealthScorer, cols: _Columns) -> dict[str, Floats]:
    """Each of the eleven signals' points, in the reference's order."""
    card, num, obs, codes = scorer.scorecard, cols.numbers, cols.observed, cols.codes
    sentiment = _table(card.sentiment_points, _CATEGORIES["avg_ticket_sentiment"][0])[codes["avg_ticket_sentiment"]]
    support = sentiment - np.minimum(num["open_ticket_count"], card.open_ticket_penalty_cap) * card.open_ticket_penalty
    seats = num["seats_utilization_rate"]
    seat_points = _at_least(seats, obs["seats_utilization_rate"], card.seats_bands, card.seats_else_points, 0.0)
    escalations = np.full(seats.shape, card.escalation_beyond_points)
    for count, points in reversed(list(enumerate(card.escalation_points))):
        escalations = np.where(num["escalation_count_90_days"] == count, points, escalations)
    return {
        "feature_adoption_rate": num["feature_adoption_rate"] * card.adoption_weight,
        "usage_trend": _table(card.usage_trend_points, _CATEGORIES["usage_trend"][0])[codes["usage_trend"]],
        "login_frequency_days": _at_most(
            num["login_frequency_days"],
            obs["login_frequency_days"],
            card.login_bands,
            card.login_beyond_points,
            card.login_unknown_points,
        ),
        "days_since_last_interaction": _at_most(
            num["days_since_last_interaction"],
            obs["days_since_last_interaction"],
            card.interaction_bands,
            card.interaction_beyond_points,
            card.interaction_unknown_points,
        ),
        "invoice_payment_status": _table(card.invoice_points, _CATEGORIES["invoice_payment_status"][0])[
            codes["invoice_payment_status"]
        ],
        "support_tickets": np.where(support < 0.0, 0.0, support),
        "days_to_renewal": _more_than(
            num["days_to_renewal"],
            obs["days_to_renewal"],
            card.renewal_bands,
            card.renewal_else_points,
            card.renewal_unknown_points,
        ),
        "seats_utilization_rate": np.where(
            seats > card.seats_over_capacity_above, card.seats_over_capacity_points, seat_points
        ),
        "stakeholder_engagement": _table(card.stakeholder_points, _CATEGORIES["stakeholder_engagement"][0])[
            codes["stakeholder_engagement"]
        ],
        "nps_score": _at_least(
            num["nps_score"], obs["nps_score"], card.nps_bands, card.nps_else_points, card.nps_unknown_points
        ),
        "escalation_count_90_days": escalations,
    }


def _multipliers(scorer: CSMHealthScorer, cols: _Columns, total: Floats) -> tuple[Floats, dict[str, Floats], Flags]:
    """The total after the collections and TAM multipliers, the points each removed, and where each applied."""
    card = scorer.scorecard
    removed: dict[str, Floats] = {}
    applied: dict[str, Flags] = {}
    tables: tuple[tuple[str, Mapping[Any, float]], ...] = (
        ("collections_risk", card.collections_multipliers),
        ("tam_health_rag", card.tam_multipliers),
    )
    for key, factors in tables:
        allowed = _CATEGORIES[key][0]
        table = np.array([*(factors.get(value, np.nan) for value in allowed), np.nan])
        factor = table[cols.codes[key]]
        has = ~np.isnan(factor)
        reduced = np.where(has, total * np.where(has, factor, 1.0), total)
        removed[key], applied[key] = reduced - total, has
        total = reduced
    stacked = np.stack([applied["collections_risk"], applied["tam_health_rag"]])
    return total, removed, stacked


def _churn(scorer: CSMHealthScorer, cols: _Columns, rag: Codes) -> list[_Outcome]:
    """Each account's RAG, churn risk level and trigger, and whether it alerts, as `CSMHealthScorer` decides them."""
    renewal, login = cols.numbers["days_to_renewal"], cols.numbers["login_frequency_days"]
    proximity = (rag != 0) & cols.observed["days_to_renewal"] & (renewal <= scorer.churn_window_days)
    trends = [_CATEGORIES["usage_trend"][0].index(t) for t in scorer.scorecard.behavioral_usage_trends]
    rare = ~cols.observed["login_frequency_days"] | (login > scorer.scorecard.behavioral_login_days)
    behavioral = np.isin(cols.codes["usage_trend"], trends) & rare
    case = rag * 4 + proximity * 2 + behavioral  # (rag, proximity, behavioral) as one code
    outcomes = [_outcome(RAGS[code // 4], bool(code & 2), bool(code & 1)) for code in range(12)]
    return [outcomes[code] for code in case.tolist()]


def _outcome(rag: Rag, proximity: bool, behavioral: bool) -> _Outcome:
    level, trigger = _churn_case(rag, proximity, behavioral)
    return rag, level, trigger, rag == "RED" or level in ("high", "critical")


def _churn_case(rag: Rag, proximity: bool, behavioral: bool) -> tuple[str, str | None]:
    if proximity and behavioral:
        return "critical", "both"
    if proximity:
        return ("critical" if rag == "RED" else "high"), "contract_proximity"
    if behavioral:
        return ("high" if rag != "GREEN" else "medium"), "behavioral"
    return ("low" if rag == "GREEN" else "medium"), None


def _coverage(scorer: CSMHealthScorer, cols: _Columns) -> tuple[list[float], list[list[str]]]:
    """Each account's coverage and missing signals, computed once per pattern of missing signals."""
    card = scorer.default_scorecard
    total = card.total_weight()
    weights = [(spec.field or name, name, spec.weight / total) for name, spec in card.signals.items()]
    pattern = np.zeros(cols.ok.shape, dtype=np.int64)
    for bit, (field, _, _) in enumerate(weights):
        pattern |= (~cols.observed[field]).astype(np.int64) << bit
    by_pattern: dict[int, tuple[float, list[str]]] = {}
    distinct: list[int] = [int(code) for code in np.unique(pattern).tolist()]
    for code in distinct:
        missing = [name for bit, (_, name, _) in enumerate(weights) if code >> bit & 1]
        share = sum(share for _, name, share in weights if name in missing)
        by_pattern[code] = (round(1 - share, 4), missing)
    rows: list[int] = pattern.tolist()  # type: ignore[assignment]
    chosen = [by_pattern[code] for code in rows]
    return [coverage for coverage, _ in chosen], [list(missing) for _, missing in chosen]


def score_batch(
    records: Sequence[Mapping[str, Any]],
    *,
    scorer: CSMHealthScorer,
    previous: Mapping[str, StoredScore],
    now: datetime,
    tz: ZoneInfo,
) -> list[CSMHealthScore | None]:
    """Score a page of records with the default scorecard at once; None for a record left to the per-account path.

    Args:
        records: Raw account records, each with a non-empty string `account_id`.
        scorer: A scorer without configured scorecards (`scorer.scorecards is None`).
        previous: Each account's last score, for deltas.
        now: The scan time (renewal countdowns, the scores' `computed_at`).
        tz: The time zone in which contract end dates are read.
    """
    if scorer.scorecards is not None:
        raise ValueError(
            "score_batch scores with the default scorecard only; a configured one is scored by scorecard_batch"
        )
    if not records:
        return []
    cols = _Columns(records, now=now, tz=tz)
    with np.errstate(all="ignore"):  # rows left to the per-account path may hold NaN or infinities
        points = _points(scorer, cols)
        total = np.zeros(cols.ok.shape)
        for column in points.values():  # summed in the reference's order, from 0
            total = total + column
        final, removed, applied = _multipliers(scorer, cols, total)
    clamped = np.where(final > SCORE_MAX, SCORE_MAX, np.where(final < SCORE_MIN, SCORE_MIN, final))
    rag = np.where(clamped >= scorer.green_threshold, 0, np.where(clamped >= scorer.amber_threshold, 1, 2))
    outcomes = _churn(scorer, cols, rag)
    coverage, missing = _coverage(scorer, cols)
    breakdowns = _breakdowns(points, removed, applied)
    scores: list[float] = python_round(clamped).tolist()
    computed_at = utc_moment(now)
    card = scorer.default_scorecard
    same_card = (card.name, card.version)
    results: list[CSMHealthScore | None] = [None] * len(records)
    for row in np.flatnonzero(cols.ok).tolist():
        account_id = cols.account_ids[row]
        breakdown = breakdowns[row]
        before = previous.get(account_id)
        if before is not None and before.scorecard != same_card:  # `comparable_previous`
            before = None
        rag_name, level, trigger, alert = outcomes[row]
        results[row] = trusted_score(
            {
                "account_id": account_id,
                "score": scores[row],
                "rag": rag_name,
                "churn_risk_level": level,
                "churn_triggered_by": trigger,
                "signal_breakdown": breakdown,
                "computed_at": computed_at,
                "previous_score": None if before is None else before.score,
                "signal_deltas": {} if before is None else score_deltas(breakdown, before.signal_breakdown),
                "coverage": coverage[row],
                "missing_signals": missing[row],
                "scorecard_name": card.name,
                "scorecard_version": card.version,
                "alert_rule": alert,
            }
        )
    return results


def _breakdowns(points: dict[str, Floats], removed: dict[str, Floats], applied: Flags) -> list[dict[str, float]]:
    """Each account's rounded breakdown: the eleven signals, then the multipliers that applied, in that order."""
    keys = list(points)
    rows: list[list[float]] = python_round(np.stack(list(points.values()), axis=1)).tolist()
    breakdowns = list(map(dict, map(zip, repeat(keys), rows)))
    for (key, column), flags in zip(removed.items(), applied, strict=True):
        where = np.flatnonzero(flags)
        for row, value in zip(where.tolist(), python_round(column[where]).tolist(), strict=True):
            breakdowns[row][key] = value
    return breakdowns
