"""The SPEC §6 health score: every table row, boundary, multiplier, RAG threshold and churn branch."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from src.app.analysis.health import (
    SIGNAL_KEYS,
    SIGNAL_MAX_POINTS,
    CSMHealthScorer,
    Scorecard,
    weakest_signals,
)
from src.app.analysis.scorecards import load_default_scorecard, score_with_scorecard
from src.app.schemas import CSMHealthScore, CSMHealthSignals

PERFECT: dict[str, Any] = {
    "feature_adoption_rate": 1.0,
    "usage_trend": "growing",
    "login_frequency_days": 1,
    "days_since_last_interaction": 1,
    "stakeholder_engagement": "high",
    "nps_score": 10,
    "invoice_payment_status": "current",
    "days_to_renewal": 365,
    "seats_utilization_rate": 0.9,
    "open_ticket_count": 0,
    "avg_ticket_sentiment": "positive",
    "escalation_count_90_days": 0,
}
WORST: dict[str, Any] = {
    "feature_adoption_rate": 0.0,
    "usage_trend": "inactive",
    "login_frequency_days": 365,
    "days_since_last_interaction": 365,
    "stakeholder_engagement": "low",
    "nps_score": 0,
    "invoice_payment_status": "overdue_90_plus",
    "days_to_renewal": 0,
    "seats_utilization_rate": 0.0,
    "open_ticket_count": 10,
    "avg_ticket_sentiment": "critical",
    "escalation_count_90_days": 9,
}
ELEVEN_KEYS = {
    "feature_adoption_rate",
    "usage_trend",
    "login_frequency_days",
    "days_since_last_interaction",
    "invoice_payment_status",
    "support_tickets",
    "days_to_renewal",
    "seats_utilization_rate",
    "stakeholder_engagement",
    "nps_score",
    "escalation_count_90_days",
}
NOW = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


def signals(**overrides: Any) -> CSMHealthSignals:
    return CSMHealthSignals(**{**PERFECT, **overrides})


def score(scorer: CSMHealthScorer | None = None, **overrides: Any) -> CSMHealthScore:
    return (scorer or CSMHealthScorer()).score(signals(**overrides), "acct-1", computed_at=NOW)


def points(key: str, **overrides: Any) -> float:
    return score(**overrides).signal_breakdown[key]


def rag_forcing_scorer(rag: str) -> CSMHealthScorer:
    """A scorer whose thresholds put any score between 0 and 100 in the wanted RAG band."""
    thresholds = {"GREEN": (0.5, 0.25), "AMBER": (101, 0), "RED": (102, 101)}[rag]
    return CSMHealthScorer(green_threshold=thresholds[0], amber_threshold=thresholds[1])


def test_perfect_signals_score_100_green_low_risk() -> None:
    result = score()
    assert result.score == 100
    assert result.rag == "GREEN"
    assert result.churn_risk_level == "low"
    assert result.churn_triggered_by is None
    assert result.signal_breakdown == SIGNAL_MAX_POINTS


def test_worst_signals_keep_only_the_floor_points() -> None:
    result = CSMHealthScorer().score(CSMHealthSignals(**WORST), "acct-1")
    # renewal else 1 + seats else 1 + stakeholders low 1
    assert result.score == 3
    assert result.rag == "RED"


def test_default_max_points_sum_to_100() -> None:
    assert sum(SIGNAL_MAX_POINTS.values()) == 100
    assert set(SIGNAL_MAX_POINTS) == ELEVEN_KEYS
    assert set(SIGNAL_KEYS) == ELEVEN_KEYS


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 0.0), (0.25, 5.0), (0.5, 10.0), (0.333, 6.66), (1.0, 20.0)])
def test_feature_adoption_points(rate: float, expected: float) -> None:
    assert points("feature_adoption_rate", feature_adoption_rate=rate) == expected


@pytest.mark.parametrize(("trend", "expected"), [("growing", 15), ("stable", 10), ("declining", 3), ("inactive", 0)])
def test_usage_trend_points(trend: str, expected: float) -> None:
    assert points("usage_trend", usage_trend=trend) == expected


@pytest.mark.parametrize(
    ("days", "expected"),
    [(0, 10), (7, 10), (8, 7), (30, 7), (31, 4), (60, 4), (61, 0), (400, 0), (None, 5)],
)
def test_login_frequency_points(days: int | None, expected: float) -> None:
    assert points("login_frequency_days", login_frequency_days=days) == expected


@pytest.mark.parametrize(
    ("days", "expected"),
    [(0, 10), (30, 10), (31, 7), (60, 7), (61, 4), (90, 4), (91, 0), (None, 5)],
)
def test_last_interaction_points(days: int | None, expected: float) -> None:
    assert points("days_since_last_interaction", days_since_last_interaction=days) == expected


@pytest.mark.parametrize(
    ("status", "expected"), [("current", 10), ("overdue_30", 6), ("overdue_60", 3), ("overdue_90_plus", 0)]
)
def test_invoice_points(status: str, expected: float) -> None:
    assert points("invoice_payment_status", invoice_payment_status=status) == expected


@pytest.mark.parametrize(
    ("sentiment", "open_tickets", "expected"),
    [
        ("positive", 0, 10),
        ("neutral", 0, 7),
        ("negative", 0, 3),
        ("critical", 0, 0),
        ("positive", 1, 9),
        ("positive", 5, 5),
        ("positive", 6, 5),
        ("positive", 50, 5),
        ("neutral", 4, 3),
        ("neutral", 7, 2),
        ("negative", 2, 1),
        ("negative", 3, 0),
        ("negative", 5, 0),
        ("critical", 2, 0),
    ],
)
def test_support_points_are_sentiment_minus_capped_open_tickets_floored_at_zero(
    sentiment: str, open_tickets: int, expected: float
) -> None:
    assert points("support_tickets", avg_ticket_sentiment=sentiment, open_ticket_count=open_tickets) == expected


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (400, 10),
        (181, 10),
        (180, 8),
        (91, 8),
        (90, 6),
        (61, 6),
        (60, 3),
        (31, 3),
        (30, 1),
        (0, 1),
        (-5, 1),
        (None, 7),
    ],
)
def test_renewal_points(days: int | None, expected: float) -> None:
    assert points("days_to_renewal", days_to_renewal=days) == expected


@pytest.mark.parametrize(
    ("rate", "expected"),
    [(2.0, 4), (1.01, 4), (1.0, 5), (0.9, 5), (0.8, 5), (0.79, 3), (0.5, 3), (0.49, 1), (0.0, 1)],
)
def test_seat_utilization_points(rate: float, expected: float) -> None:
    assert points("seats_utilization_rate", seats_utilization_rate=rate) == expected


@pytest.mark.parametrize(("engagement", "expected"), [("high", 5), ("medium", 3), ("low", 1)])
def test_stakeholder_points(engagement: str, expected: float) -> None:
    assert points("stakeholder_engagement", stakeholder_engagement=engagement) == expected


@pytest.mark.parametrize(
    ("nps", "expected"),
    [(10, 3), (9, 3), (8, 2), (7, 2), (6, 1), (5, 1), (4, 0), (0, 0), (None, 2)],
)
def test_nps_points(nps: int | None, expected: float) -> None:
    assert points("nps_score", nps_score=nps) == expected


@pytest.mark.parametrize(("count", "expected"), [(0, 2), (1, 1), (2, 0), (10, 0)])
def test_escalation_points(count: int, expected: float) -> None:
    assert points("escalation_count_90_days", escalation_count_90_days=count) == expected


@pytest.mark.parametrize(
    ("collections", "tam", "expected_score", "expected_removed"),
    [
        ("CRITICAL", None, 80.0, {"collections_risk": -20.0}),
        ("RED", None, 90.0, {"collections_risk": -10.0}),
        ("AMBER", None, 100.0, {}),
        ("GREEN", None, 100.0, {}),
        (None, "RED", 85.0, {"tam_health_rag": -15.0}),
        (None, "AMBER", 95.0, {"tam_health_rag": -5.0}),
        (None, "GREEN", 100.0, {}),
        ("CRITICAL", "RED", 68.0, {"collections_risk": -20.0, "tam_health_rag": -12.0}),
        ("RED", "AMBER", 85.5, {"collections_risk": -10.0, "tam_health_rag": -4.5}),
    ],
)
def test_multipliers_scale_the_score_and_record_the_points_removed(
    collections: str | None, tam: str | None, expected_score: float, expected_removed: dict[str, float]
) -> None:
    result = score(collections_risk=collections, tam_health_rag=tam)
    assert result.score == expected_score
    extra = {key: value for key, value in result.signal_breakdown.items() if key not in ELEVEN_KEYS}
    assert extra == expected_removed
    assert sum(result.signal_breakdown.values()) == pytest.approx(result.score, abs=0.01)


def test_breakdown_has_exactly_the_eleven_keys_without_multipliers() -> None:
    result = CSMHealthScorer().score(CSMHealthSignals(**WORST), "acct-1")
    assert set(result.signal_breakdown) == ELEVEN_KEYS


def test_score_is_clamped_to_100() -> None:
    scorer = CSMHealthScorer(scorecard=Scorecard(adoption_weight=200))
    assert score(scorer).score == 100


def test_score_is_clamped_to_0() -> None:
    card = Scorecard(usage_trend_points={"growing": 15, "stable": 10, "declining": 3, "inactive": -500})
    assert score(CSMHealthScorer(scorecard=card), usage_trend="inactive").score == 0


def test_score_is_rounded_to_two_decimals() -> None:
    result = score(feature_adoption_rate=0.12345, usage_trend="stable")
    assert result.score == round(result.score, 2)
    assert result.signal_breakdown["feature_adoption_rate"] == 2.47


_MIDDLING = {
    "usage_trend": "stable",
    "login_frequency_days": 30,
    "days_since_last_interaction": 60,
    "invoice_payment_status": "overdue_30",
    "avg_ticket_sentiment": "neutral",
    "nps_score": 8,
    "escalation_count_90_days": 1,
}
_POOR = {
    "usage_trend": "declining",
    "login_frequency_days": 90,
    "invoice_payment_status": "overdue_90_plus",
    "avg_ticket_sentiment": "critical",
    "nps_score": 0,
}


def _signals_scoring(target: float) -> CSMHealthSignals:
    """Signals whose default score is exactly `target`: fixed others (80, 60 or 35 points) + adoption."""
    for degraded in ({}, _MIDDLING, _POOR):
        base = {**PERFECT, **degraded, "feature_adoption_rate": 0.0}
        others = CSMHealthScorer().score(CSMHealthSignals(**base), "x").score
        if others <= target:
            return CSMHealthSignals(**{**base, "feature_adoption_rate": (target - others) / 20})
    raise AssertionError(f"no signals score {target}")


@pytest.mark.parametrize(
    ("target", "rag"), [(100, "GREEN"), (70, "GREEN"), (69.99, "AMBER"), (40, "AMBER"), (39.99, "RED")]
)
def test_rag_thresholds_are_inclusive_lower_bounds(target: float, rag: str) -> None:
    result = CSMHealthScorer().score(_signals_scoring(target), "acct-1")
    assert result.score == target
    assert result.rag == rag


@pytest.mark.parametrize(
    ("target", "rag"), [(80, "GREEN"), (79.99, "AMBER"), (75, "AMBER"), (50, "AMBER"), (49.99, "RED")]
)
def test_custom_rag_thresholds(target: float, rag: str) -> None:
    scorer = CSMHealthScorer(green_threshold=80, amber_threshold=50)
    result = scorer.score(_signals_scoring(target), "acct-1")
    assert result.score == target
    assert result.rag == rag


@pytest.mark.parametrize(("green", "amber"), [(40, 40), (40, 70), (0, 0.5)])
def test_amber_threshold_must_be_below_green(green: float, amber: float) -> None:
    with pytest.raises(ValueError, match="amber_threshold"):
        CSMHealthScorer(green_threshold=green, amber_threshold=amber)


def test_scorer_arguments_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        CSMHealthScorer(70, 40)  # type: ignore[call-arg]


DISENGAGED = {"usage_trend": "declining", "login_frequency_days": None}
ENGAGED = {"usage_trend": "stable", "login_frequency_days": 3}


@pytest.mark.parametrize(
    ("rag", "renewal", "behaviour", "level", "trigger"),
    [
        ("RED", 30, DISENGAGED, "critical", "both"),
        ("AMBER", 30, DISENGAGED, "critical", "both"),
        ("RED", 30, ENGAGED, "critical", "contract_proximity"),
        ("AMBER", 30, ENGAGED, "high", "contract_proximity"),
        ("RED", 365, DISENGAGED, "high", "behavioral"),
        ("AMBER", 365, DISENGAGED, "high", "behavioral"),
        ("GREEN", 365, DISENGAGED, "medium", "behavioral"),
        ("GREEN", 30, DISENGAGED, "medium", "behavioral"),
        ("GREEN", 30, ENGAGED, "low", None),
        ("GREEN", 365, ENGAGED, "low", None),
        ("AMBER", 365, ENGAGED, "medium", None),
        ("RED", 365, ENGAGED, "medium", None),
        ("RED", None, ENGAGED, "medium", None),
    ],
)
def test_churn_risk_branches(
    rag: str, renewal: int | None, behaviour: dict[str, Any], level: str, trigger: str | None
) -> None:
    result = score(rag_forcing_scorer(rag), days_to_renewal=renewal, **behaviour)
    assert result.rag == rag
    assert (result.churn_risk_level, result.churn_triggered_by) == (level, trigger)


@pytest.mark.parametrize(
    ("renewal", "window", "trigger"),
    [
        (60, 60, "contract_proximity"),
        (61, 60, None),
        (0, 60, "contract_proximity"),
        (-3, 60, "contract_proximity"),
    ]
    + [(90, 90, "contract_proximity"), (91, 90, None), (None, 60, None)],
)
def test_contract_proximity_uses_the_churn_window(renewal: int | None, window: int, trigger: str | None) -> None:
    scorer = CSMHealthScorer(green_threshold=101, amber_threshold=0, churn_window_days=window)
    assert score(scorer, days_to_renewal=renewal).churn_triggered_by == trigger


@pytest.mark.parametrize(
    ("trend", "login", "behavioral"),
    [
        ("declining", 31, True),
        ("declining", 30, False),
        ("declining", None, True),
        ("inactive", 31, True),
        ("inactive", 1, False),
        ("stable", None, False),
        ("growing", 365, False),
    ],
)
def test_behavioral_trigger(trend: str, login: int | None, behavioral: bool) -> None:
    result = score(usage_trend=trend, login_frequency_days=login)
    assert (result.churn_triggered_by == "behavioral") is behavioral


@pytest.mark.parametrize(
    ("rag", "renewal", "behaviour", "should_alert"),
    [
        ("RED", 365, ENGAGED, True),
        ("AMBER", 30, ENGAGED, True),
        ("AMBER", 365, DISENGAGED, True),
        ("AMBER", 365, ENGAGED, False),
        ("GREEN", 365, DISENGAGED, False),
        ("GREEN", 365, ENGAGED, False),
    ],
)
def test_should_alert(rag: str, renewal: int, behaviour: dict[str, Any], should_alert: bool) -> None:
    result = score(rag_forcing_scorer(rag), days_to_renewal=renewal, **behaviour)
    assert result.should_alert is should_alert
    assert result.model_dump()["should_alert"] is should_alert


def test_previous_score_and_deltas_name_what_moved() -> None:
    scorer = CSMHealthScorer()
    before = scorer.score(signals(collections_risk="RED"), "acct-1")
    after = scorer.score(signals(usage_trend="declining", nps_score=6), "acct-1", previous=before, computed_at=NOW)
    assert after.previous_score == before.score == 90
    assert after.signal_deltas == {"collections_risk": 10.0, "nps_score": -2.0, "usage_trend": -12.0}
    assert after.score_delta == round(after.score - 90, 2)


def test_no_previous_means_no_deltas() -> None:
    result = score()
    assert result.previous_score is None
    assert result.signal_deltas == {}
    assert result.score_delta is None


def test_unchanged_signals_have_no_deltas() -> None:
    scorer = CSMHealthScorer()
    before = scorer.score(signals(), "acct-1")
    assert scorer.score(signals(), "acct-1", previous=before).signal_deltas == {}


def test_computed_at_is_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    scorer = CSMHealthScorer()
    aware = scorer.score(signals(), "a", computed_at=datetime(2026, 1, 1, 9, 0, tzinfo=tokyo))
    naive = scorer.score(signals(), "a", computed_at=datetime(2026, 1, 1, 0, 0))
    assert aware.computed_at == naive.computed_at == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert aware.computed_at.utcoffset() == timedelta(0)
    before = datetime.now(UTC)
    assert scorer.score(signals(), "a").computed_at >= before


def test_score_is_pure() -> None:
    scorer = CSMHealthScorer()
    inputs = signals(collections_risk="CRITICAL", usage_trend="stable")
    snapshot = inputs.model_dump()
    first = scorer.score(inputs, "acct-1", computed_at=NOW)
    second = scorer.score(inputs, "acct-1", computed_at=NOW)
    assert first == second
    assert inputs.model_dump() == snapshot


def test_scores_are_valid_models() -> None:
    result = score(collections_risk="RED", usage_trend="inactive")
    assert CSMHealthScore.model_validate(result.model_dump()) == result


def test_scorecard_overrides_change_points_and_max_points() -> None:
    card = Scorecard(adoption_weight=30, stakeholder_points={"high": 10, "medium": 5, "low": 0})
    result = score(CSMHealthScorer(scorecard=card), feature_adoption_rate=0.5, stakeholder_engagement="medium")
    assert result.signal_breakdown["feature_adoption_rate"] == 15
    assert result.signal_breakdown["stakeholder_engagement"] == 5
    assert card.max_points()["feature_adoption_rate"] == 30
    assert card.max_points()["stakeholder_engagement"] == 10


def test_scorecard_rejects_bands_in_the_wrong_order() -> None:
    with pytest.raises(ValidationError, match="login_bands thresholds must be ascending"):
        Scorecard(login_bands=((30, 7), (7, 10)))
    with pytest.raises(ValidationError, match="renewal_bands thresholds must be descending"):
        Scorecard(renewal_bands=((30, 3), (180, 10)))


def test_scorecard_point_tables_must_cover_every_value() -> None:
    with pytest.raises(ValidationError, match="usage_trend_points has no points for stable, declining, inactive"):
        Scorecard(usage_trend_points={"growing": 20})


def test_scorecard_can_be_loaded_from_json() -> None:
    card = Scorecard.model_validate_json('{"nps_bands": [[8, 5], [4, 1]], "collections_multipliers": {"RED": 0.5}}')
    result = score(CSMHealthScorer(scorecard=card), nps_score=8, collections_risk="RED")
    assert result.signal_breakdown["nps_score"] == 5
    assert result.signal_breakdown["collections_risk"] == pytest.approx(-(result.score))


@given(
    st.builds(
        CSMHealthSignals,
        feature_adoption_rate=st.floats(0, 1),
        usage_trend=st.sampled_from(["growing", "stable", "declining", "inactive"]),
        login_frequency_days=st.none() | st.integers(0, 400),
        days_since_last_interaction=st.none() | st.integers(0, 400),
        stakeholder_engagement=st.sampled_from(["high", "medium", "low"]),
        nps_score=st.none() | st.integers(0, 10),
        invoice_payment_status=st.sampled_from(["current", "overdue_30", "overdue_60", "overdue_90_plus"]),
        days_to_renewal=st.none() | st.integers(-30, 800),
        seats_utilization_rate=st.floats(0, 2),
        open_ticket_count=st.integers(0, 30),
        avg_ticket_sentiment=st.sampled_from(["positive", "neutral", "negative", "critical"]),
        escalation_count_90_days=st.integers(0, 10),
        tam_health_rag=st.sampled_from([None, "GREEN", "AMBER", "RED"]),
        collections_risk=st.sampled_from([None, "GREEN", "AMBER", "RED", "CRITICAL"]),
    )
)
def test_breakdown_always_sums_to_the_score(inputs: CSMHealthSignals) -> None:
    result = CSMHealthScorer().score(inputs, "acct-1")
    assert 0 <= result.score <= 100
    assert ELEVEN_KEYS <= set(result.signal_breakdown) <= ELEVEN_KEYS | {"collections_risk", "tam_health_rag"}
    assert sum(result.signal_breakdown.values()) == pytest.approx(result.score, abs=0.01 * 7)
    for key, best in SIGNAL_MAX_POINTS.items():
        assert 0 <= result.signal_breakdown[key] <= best


def test_weakest_signals_orders_by_points_lost_then_name() -> None:
    result = score(usage_trend="declining", nps_score=None, login_frequency_days=20, seats_utilization_rate=0.6)
    assert weakest_signals(result) == [
        ("usage_trend", 3.0, 15.0),
        ("login_frequency_days", 7.0, 10.0),
        ("seats_utilization_rate", 3.0, 5.0),
    ]
    assert weakest_signals(result, limit=10)[3:] == [("nps_score", 2.0, 3.0)]


def test_weakest_signals_of_a_perfect_account_is_empty() -> None:
    assert weakest_signals(score()) == []


def test_weakest_signals_uses_the_given_scorecard() -> None:
    card = Scorecard(adoption_weight=50)
    result = score(CSMHealthScorer(scorecard=card), feature_adoption_rate=0.9)
    assert weakest_signals(result, card) == [("feature_adoption_rate", 45.0, 50.0)]


def test_scoring_is_fast() -> None:
    scorer = CSMHealthScorer()
    inputs = [signals(feature_adoption_rate=i / 20_000, collections_risk="RED") for i in range(20_000)]
    started = time.perf_counter()
    for item in inputs:
        scorer.score(item, "acct-1", computed_at=NOW)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(("target", "rag", "shown"), [(39.997, "RED", 40.0), (69.996, "AMBER", 70.0)])
def test_thresholds_apply_to_the_unrounded_score(target: float, rag: str, shown: float) -> None:
    signals = _signals_scoring(target)
    seed = CSMHealthScorer().score(signals, "acct-1")
    card = score_with_scorecard(signals.model_dump(), load_default_scorecard(), "acct-1")
    assert (seed.score, seed.rag) == (shown, rag)
    assert (card.score, card.rag) == (shown, rag)
