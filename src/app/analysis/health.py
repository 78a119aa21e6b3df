"""The deterministic account health score of SPEC §6: points per signal, multipliers, RAG and churn risk."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from src.app.analysis.derived_signals import DERIVED_FIELDS
from src.app.analysis.scorecard_model import ScorecardSet, ScorecardSpec
from src.app.analysis.scorecards import (
    ScorecardInputError,
    load_default_scorecard,
    score_with_scorecard,
    scorecard_fields,
    select_scorecard,
)
from src.app.analysis.signals import AccountDataError
from src.app.schemas import (
    ChurnRiskLevel,
    ChurnTrigger,
    CollectionsRisk,
    CSMHealthScore,
    CSMHealthSignals,
    Engagement,
    InvoiceStatus,
    Rag,
    StoredScore,
    TicketSentiment,
    UsageTrend,
    trusted_score,
)

Bands = tuple[tuple[float, float], ...]
"""(threshold, points) pairs, checked in order; the first band whose threshold matches wins."""

SCORE_MIN = 0.0
SCORE_MAX = 100.0
MAX_REMEMBERED_POINTS = 4096


class Scorecard(BaseModel):
    """Every number of the SPEC §6 scorecard, with its defaults; a tenant may override any of them.

    RAG thresholds and the churn window are arguments of `CSMHealthScorer`, as in the seed's contract.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    adoption_weight: float = Field(default=20, ge=0, description="Points for a feature adoption rate of 1.0")
    usage_trend_points: dict[UsageTrend, float] = {"growing": 15, "stable": 10, "declining": 3, "inactive": 0}
    login_bands: Bands = Field(default=((7, 10), (30, 7), (60, 4)), description="(at most N days, points)")
    login_beyond_points: float = 0
    login_unknown_points: float = 5
    interaction_bands: Bands = Field(default=((30, 10), (60, 7), (90, 4)), description="(at most N days, points)")
    interaction_beyond_points: float = 0
    interaction_unknown_points: float = 5
    invoice_points: dict[InvoiceStatus, float] = {
        "current": 10,
        "overdue_30": 6,
        "overdue_60": 3,
        "overdue_90_plus": 0,
    }
    sentiment_points: dict[TicketSentiment, float] = {
        "positive": 10,
        "neutral": 7,
        "negative": 3,
        "critical": 0,
    }
    open_ticket_penalty: float = Field(default=1, ge=0, description="Points removed per open ticket")
    open_ticket_penalty_cap: int = Field(default=5, ge=0, description="Open tickets counted at most")
    renewal_bands: Bands = Field(
        default=((180, 10), (90, 8), (60, 6), (30, 3)), description="(more than N days to renewal, points)"
    )
    renewal_else_points: float = 1
    renewal_unknown_points: float = 7
    seats_over_capacity_above: float = Field(default=1.0, description="Utilization above this is over capacity")
    seats_over_capacity_points: float = 4
    seats_bands: Bands = Field(default=((0.8, 5), (0.5, 3)), description="(utilization at least R, points)")
    seats_else_points: float = 1
    stakeholder_points: dict[Engagement, float] = {"high": 5, "medium": 3, "low": 1}
    nps_bands: Bands = Field(default=((9, 3), (7, 2), (5, 1)), description="(NPS at least N, points)")
    nps_else_points: float = 0
    nps_unknown_points: float = 2
    escalation_points: tuple[float, ...] = Field(default=(2, 1), description="Points for 0, 1, ... escalations")
    escalation_beyond_points: float = 0
    collections_multipliers: dict[CollectionsRisk, float] = {"CRITICAL": 0.80, "RED": 0.90}
    tam_multipliers: dict[Rag, float] = {"RED": 0.85, "AMBER": 0.95}
    behavioral_usage_trends: tuple[UsageTrend, ...] = ("declining", "inactive")
    behavioral_login_days: int = Field(default=30, description="Logins rarer than this count as disengaged")

    @model_validator(mode="after")
    def _bands_in_matching_order(self) -> Self:
        for name, ascending in (
            ("login_bands", True),
            ("interaction_bands", True),
            ("renewal_bands", False),
            ("seats_bands", False),
            ("nps_bands", False),
        ):
            thresholds = [threshold for threshold, _ in getattr(self, name)]
            if thresholds != sorted(thresholds, reverse=not ascending):
                order = "ascending" if ascending else "descending"
                raise ValueError(f"{name} thresholds must be {order}, got {thresholds}")
        return self

    @model_validator(mode="after")
    def _point_tables_cover_every_value(self) -> Self:
        for name, values in (
            ("usage_trend_points", UsageTrend),
            ("invoice_points", InvoiceStatus),
            ("sentiment_points", TicketSentiment),
            ("stakeholder_points", Engagement),
        ):
            missing = [value for value in get_args(values) if value not in getattr(self, name)]
            if missing:
                raise ValueError(f"{name} has no points for {', '.join(missing)}")
        return self

    def max_points(self) -> dict[str, float]:
        """The most points each of the eleven signals can earn under this scorecard."""
        return {
            "feature_adoption_rate": self.adoption_weight,
            "usage_trend": max(self.usage_trend_points.values()),
            "login_frequency_days": _best(self.login_bands, self.login_beyond_points, self.login_unknown_points),
            "days_since_last_interaction": _best(
                self.interaction_bands, self.interaction_beyond_points, self.interaction_unknown_points
            ),
            "invoice_payment_status": max(self.invoice_points.values()),
            "support_tickets": max(self.sentiment_points.values()),
            "days_to_renewal": _best(self.renewal_bands, self.renewal_else_points, self.renewal_unknown_points),
            "seats_utilization_rate": _best(self.seats_bands, self.seats_else_points, self.seats_over_capacity_points),
            "stakeholder_engagement": max(self.stakeholder_points.values()),
            "nps_score": _best(self.nps_bands, self.nps_else_points, self.nps_unknown_points),
            "escalation_count_90_days": max((*self.escalation_points, self.escalation_beyond_points)),
        }


def _best(bands: Bands, *others: float) -> float:
    return max((*(points for _, points in bands), *others))


SIGNAL_MAX_POINTS: dict[str, float] = Scorecard().max_points()
"""Max points per breakdown key under the default scorecard (they sum to 100)."""

SIGNAL_KEYS: tuple[str, ...] = tuple(SIGNAL_MAX_POINTS)
"""The eleven signal keys of every `signal_breakdown`, in scorecard order."""


class CSMHealthScorer:
    """Scores one account's signals into a `CSMHealthScore`; pure, no I/O, safe to share.

    Without `scorecards` it scores with the shipped default scorecard, by the seed's own fast code (the two give
    the same scores: property-tested); with a scorecard set (`CSM_SCORECARD`), each account is scored with the
    scorecard its segment selects. Every score carries its coverage, missing signals and scorecard.
    """

    def __init__(
        self,
        *,
        green_threshold: float = 70,
        amber_threshold: float = 40,
        churn_window_days: int = 60,
        scorecard: Scorecard | None = None,
        scorecards: ScorecardSet | None = None,
    ) -> None:
        if amber_threshold >= green_threshold:
            raise ValueError(
                f"amber_threshold ({amber_threshold}) must be lower than green_threshold ({green_threshold})"
            )
        self.green_threshold = green_threshold
        self.amber_threshold = amber_threshold
        self.churn_window_days = churn_window_days
        self.scorecard = scorecard if scorecard is not None else Scorecard()
        self.scorecards = scorecards
        self.default_scorecard = default_scorecard_for(green_threshold, amber_threshold, churn_window_days)
        self.derived_fields: frozenset[str] = (
            frozenset() if scorecards is None else frozenset(DERIVED_FIELDS) & _fields_read(scorecards)
        )
        """The derived signals (tenure, score trends) some configured scorecard reads: compute only these."""
        total = self.default_scorecard.total_weight()
        self._weights = tuple(
            (spec.field or name, name, spec.weight / total) for name, spec in self.default_scorecard.signals.items()
        )
        self._rounded: dict[float, float] = {}

    def scorecard_for(self, account: Mapping[str, Any]) -> ScorecardSpec:
        """The scorecard that scores this account: its segment's, or the default."""
        if self.scorecards is None:
            return self.default_scorecard
        return select_scorecard(self.scorecards, account)[1]

    def score(
        self,
        signals: CSMHealthSignals,
        account_id: str,
        *,
        previous: StoredScore | None = None,
        computed_at: datetime | None = None,
        account: Mapping[str, Any] | None = None,
    ) -> CSMHealthScore:
        """Score the signals of one account, with deltas against its previous score when given.

        Args:
            signals: The validated signals of the account; fields never set count as not observed.
            account_id: The account the score belongs to.
            previous: The account's last score, to report `previous_score` and per-signal `signal_deltas`
                (only when the same scorecard computed it).
            computed_at: When the score is computed (naive means UTC); defaults to now.
            account: The account's other fields, for segment rules and derived signals (tenure, score trend).

        Returns:
            The score, whose `signal_breakdown` values (multiplier keys included) sum to the score.

        Raises:
            AccountDataError: Only with a configured scorecard: coverage below its floor, or an unmappable value.
        """
        if self.scorecards is not None:
            values = signals.model_dump(exclude_unset=True, exclude_none=True)
            return self.score_values(values, account_id, previous=previous, computed_at=computed_at, account=account)
        breakdown = self._points(signals)
        raw = sum(breakdown.values())
        final = self._apply_multipliers(signals, raw, breakdown)
        clamped = min(max(final, SCORE_MIN), SCORE_MAX)
        score = round(clamped, 2)
        rag = self._rag(clamped)  # thresholds apply to the unrounded score: 39.997 is RED, not AMBER
        churn_level, trigger = self._churn(signals, rag)
        rounded = {key: self._round(points) for key, points in breakdown.items()}
        card = self.default_scorecard
        previous = comparable_previous(previous, card)
        missing = self._missing(signals)
        return trusted_score(
            {
                "account_id": account_id,
                "score": score,
                "rag": rag,
                "churn_risk_level": churn_level,
                "churn_triggered_by": trigger,
                "signal_breakdown": rounded,
                "computed_at": utc_moment(computed_at),
                "previous_score": None if previous is None else previous.score,
                "signal_deltas": {} if previous is None else score_deltas(rounded, previous.signal_breakdown),
                "coverage": round(1 - sum(share for _, name, share in self._weights if name in missing), 4),
                "missing_signals": missing,
                "scorecard_name": card.name,
                "scorecard_version": card.version,
                "alert_rule": rag == "RED" or churn_level in ("high", "critical"),
            }
        )

    def score_values(
        self,
        values: Mapping[str, Any],
        account_id: str,
        *,
        previous: StoredScore | None = None,
        computed_at: datetime | None = None,
        account: Mapping[str, Any] | None = None,
    ) -> CSMHealthScore:
        """Score an account's observed signal values (any may be missing) with its scorecard.

        Args:
            values: Validated signal values by field; absent or None means not observed.
            account_id: The account the score belongs to.
            previous: The account's last score, for deltas when the same scorecard computed it.
            computed_at: When the score is computed (naive means UTC); defaults to now.
            account: The account's other fields, for segment rules and derived signals.

        Raises:
            AccountDataError: kind "insufficient_data" below the scorecard's coverage floor, "invalid_data" for a
                value the scorecard cannot map.
        """
        record = values if account is None else {**account, **values}
        card = self.scorecard_for(record)
        try:
            result = score_with_scorecard(record, card, account_id)
        except ScorecardInputError as error:
            raise AccountDataError(account_id, [str(error)], kind="invalid_data") from None
        if result.insufficient:
            problem = (
                f"coverage {result.coverage:.0%} is below the floor of scorecard {card.name!r} "
                f"({card.coverage_floor:.0%}); missing signals: {', '.join(result.missing_signals)}"
            )
            raise AccountDataError(account_id, [problem], kind="insufficient_data")
        score = result.to_health_score(computed_at=utc_moment(computed_at))
        previous = comparable_previous(previous, card)
        if previous is not None:
            score.previous_score = previous.score
            score.signal_deltas = score_deltas(score.signal_breakdown, previous.signal_breakdown)
        return score

    def _missing(self, signals: CSMHealthSignals) -> list[str]:
        """The default scorecard's signals whose field was never set or is None, in scorecard order."""
        given, values = signals.model_fields_set, signals.__dict__
        return [name for field, name, _ in self._weights if field not in given or values[field] is None]

    def _round(self, points: float) -> float:
        """`round(points, 2)`, remembered: a book's points take few distinct values, and it runs 11 times an account."""
        value = self._rounded.get(points)
        if value is None:
            value = round(points, 2)
            if len(self._rounded) < MAX_REMEMBERED_POINTS:
                self._rounded[points] = value
        return value

    def _points(self, signals: CSMHealthSignals) -> dict[str, float]:
        card = self.scorecard
        sentiment = card.sentiment_points[signals.avg_ticket_sentiment]
        penalty = min(signals.open_ticket_count, card.open_ticket_penalty_cap) * card.open_ticket_penalty
        escalations = signals.escalation_count_90_days
        return {
            "feature_adoption_rate": signals.feature_adoption_rate * card.adoption_weight,
            "usage_trend": card.usage_trend_points[signals.usage_trend],
            "login_frequency_days": _at_most(
                signals.login_frequency_days,
                card.login_bands,
                card.login_beyond_points,
                card.login_unknown_points,
            ),
            "days_since_last_interaction": _at_most(
                signals.days_since_last_interaction,
                card.interaction_bands,
                card.interaction_beyond_points,
                card.interaction_unknown_points,
            ),
            "invoice_payment_status": card.invoice_points[signals.invoice_payment_status],
            "support_tickets": max(sentiment - penalty, 0.0),
            "days_to_renewal": _more_than(
                signals.days_to_renewal,
                card.renewal_bands,
                card.renewal_else_points,
                card.renewal_unknown_points,
            ),
            "seats_utilization_rate": self._seat_points(signals.seats_utilization_rate),
            "stakeholder_engagement": card.stakeholder_points[signals.stakeholder_engagement],
            "nps_score": _at_least(signals.nps_score, card.nps_bands, card.nps_else_points, card.nps_unknown_points),
            "escalation_count_90_days": (
                card.escalation_points[escalations]
                if escalations < len(card.escalation_points)
                else card.escalation_beyond_points
            ),
        }

    def _seat_points(self, utilization: float) -> float:
        card = self.scorecard
        if utilization > card.seats_over_capacity_above:
            return card.seats_over_capacity_points
        return _at_least(utilization, card.seats_bands, card.seats_else_points, card.seats_else_points)

    def _apply_multipliers(self, signals: CSMHealthSignals, raw: float, breakdown: dict[str, float]) -> float:
        """Apply the collections and TAM multipliers, recording the points each removed in the breakdown."""
        card = self.scorecard
        collections = signals.collections_risk
        tam = signals.tam_health_rag
        total = raw
        if collections is not None and collections in card.collections_multipliers:
            total = _multiply(total, card.collections_multipliers[collections], "collections_risk", breakdown)
        if tam is not None and tam in card.tam_multipliers:
            total = _multiply(total, card.tam_multipliers[tam], "tam_health_rag", breakdown)
        return total

    def _rag(self, score: float) -> Rag:
        if score >= self.green_threshold:
            return "GREEN"
        if score >= self.amber_threshold:
            return "AMBER"
        return "RED"

    def _churn(self, signals: CSMHealthSignals, rag: Rag) -> tuple[ChurnRiskLevel, ChurnTrigger | None]:
        renewal = signals.days_to_renewal
        proximity = rag != "GREEN" and renewal is not None and renewal <= self.churn_window_days
        login = signals.login_frequency_days
        behavioral = signals.usage_trend in self.scorecard.behavioral_usage_trends and (
            login is None or login > self.scorecard.behavioral_login_days
        )
        if proximity and behavioral:
            return "critical", "both"
        if proximity:
            return ("critical" if rag == "RED" else "high"), "contract_proximity"
        if behavioral:
            return ("high" if rag != "GREEN" else "medium"), "behavioral"
        return ("low" if rag == "GREEN" else "medium"), None


def default_scorecard_for(green: float, amber: float, churn_window_days: int) -> ScorecardSpec:
    """The shipped default scorecard with these RAG thresholds and churn window (the seed scorer's arguments)."""
    card = load_default_scorecard()
    proximity = card.churn.contract_proximity
    if (card.rag.green, card.rag.amber) == (green, amber) and (
        proximity is None or proximity.conditions[0].at_most == churn_window_days
    ):
        return card
    churn = card.churn
    if proximity is not None:
        window = proximity.conditions[0].model_copy(update={"at_most": churn_window_days})
        churn = churn.model_copy(
            update={
                "contract_proximity": proximity.model_copy(update={"conditions": (window, *proximity.conditions[1:])})
            }
        )
    rag = card.rag.model_copy(update={"green": green, "amber": amber})
    return card.model_copy(update={"rag": rag, "churn": churn})


def _fields_read(scorecards: ScorecardSet) -> set[str]:
    return {field for card in scorecards.scorecards.values() for field in scorecard_fields(card)} | {
        condition.field for segment in scorecards.segments for condition in segment.when
    }


def comparable_previous(previous: StoredScore | None, card: ScorecardSpec) -> StoredScore | None:
    """The previous score when the same scorecard (name and version) computed it; scores of others never compare."""
    if previous is None or previous.scorecard != (card.name, card.version):
        return None
    return previous


def _at_most(value: float | None, bands: Bands, beyond: float, unknown: float) -> float:
    if value is None:
        return unknown
    for limit, points in bands:  # plain loops: these run eleven times per account of a whole-book scan
        if value <= limit:
            return points
    return beyond


def _at_least(value: float | None, bands: Bands, below: float, unknown: float) -> float:
    if value is None:
        return unknown
    for floor, points in bands:
        if value >= floor:
            return points
    return below


def _more_than(value: float | None, bands: Bands, below: float, unknown: float) -> float:
    if value is None:
        return unknown
    for floor, points in bands:
        if value > floor:
            return points
    return below


def _multiply(total: float, multiplier: float, key: str, breakdown: dict[str, float]) -> float:
    reduced = total * multiplier
    breakdown[key] = reduced - total
    return reduced


def utc_moment(moment: datetime | None) -> datetime:
    """`moment` as an aware UTC datetime (naive means UTC; None means now)."""
    if moment is None:
        return datetime.now(UTC)
    if moment.tzinfo is UTC:
        return moment
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def score_deltas(current: Mapping[str, float], previous: Mapping[str, float]) -> dict[str, float]:
    """The per-signal change of a breakdown since the previous one, rounded; signals that did not move left out."""
    if current == previous:  # the common case of a daily scan: nothing moved
        return {}
    moved = sorted(key for key in current.keys() | previous.keys() if current.get(key) != previous.get(key))
    deltas = {key: round(current.get(key, 0.0) - previous.get(key, 0.0), 2) for key in moved}
    return {key: delta for key, delta in deltas.items() if delta != 0}


def weakest_signals(
    score: CSMHealthScore, scorecard: Scorecard | None = None, limit: int = 3
) -> list[tuple[str, float, float]]:
    """The signals that lost the most points, as (signal, points, max_points), largest loss first.

    Losses are compared in whole cents, so float noise never reorders equal losses; signals that earned their
    maximum are left out; ties are ordered by signal name.
    """
    max_points = SIGNAL_MAX_POINTS if scorecard is None else scorecard.max_points()
    rows = [(key, score.signal_breakdown.get(key, 0.0), best) for key, best in max_points.items()]
    losing = [(cents_lost(points, best), key, points, best) for key, points, best in rows]
    losing.sort(key=lambda row: (-row[0], row[1]))
    return [(key, points, best) for cents, key, points, best in losing[:limit] if cents > 0]


def cents_lost(points: float, best: float) -> int:
    """Points a signal lost below its maximum, in whole cents (breakdowns hold points rounded to 2 places)."""
    return -int((points - best) * 100 - 0.5)
