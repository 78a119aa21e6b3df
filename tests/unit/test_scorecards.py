"""Scorecards as data: the default reproduces the seed scorer, coverage, validation errors, segments, curves."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from src.app.analysis.derived_signals import score_trend, score_trends, tenure_days
from src.app.analysis.health import SIGNAL_MAX_POINTS, CSMHealthScorer
from src.app.analysis.scorecard_toml import scorecard_diff, scorecard_to_toml
from src.app.analysis.scorecards import (
    ScorecardError,
    ScorecardInputError,
    breakdown_fields,
    load_default_scorecard,
    load_scorecard,
    load_scorecard_set,
    parse_scorecard,
    score_with_scorecard,
    select_scorecard,
)
from src.app.schemas import CSMHealthSignals

NOW = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
FULL: dict[str, Any] = {
    "feature_adoption_rate": 0.5,
    "usage_trend": "stable",
    "login_frequency_days": 10,
    "days_since_last_interaction": 20,
    "stakeholder_engagement": "medium",
    "nps_score": 8,
    "invoice_payment_status": "current",
    "days_to_renewal": 200,
    "seats_utilization_rate": 0.9,
    "open_ticket_count": 1,
    "avg_ticket_sentiment": "neutral",
    "escalation_count_90_days": 0,
}

SMALL = """
name = "small"
version = "1"
coverage_floor = 0.5

[rag]
green = 70
amber = 40

[signals.login]
field = "login_frequency_days"
weight = 60
direction = "lower_is_better"
{mapping}
missing = "{missing}"
{neutral}

[signals.usage_trend]
weight = 40
categories = {{ growing = 40, stable = 30, declining = 10, inactive = 0 }}
missing = "exclude"

[churn.levels]
both = {{ GREEN = "critical", AMBER = "critical", RED = "critical" }}
contract_proximity = {{ GREEN = "high", AMBER = "high", RED = "critical" }}
behavioral = {{ GREEN = "medium", AMBER = "high", RED = "high" }}
none = {{ GREEN = "low", AMBER = "medium", RED = "medium" }}
"""
BANDS = "bands = [{ at_most = 7, points = 60 }, { at_most = 30, points = 30 }]\nelse_points = 0"
CURVE = "curve = [[0, 1.0], [60, 0.0]]"


def small(mapping: str = BANDS, missing: str = "neutral", neutral: str = "neutral_points = 30") -> str:
    return SMALL.format(mapping=mapping, missing=missing, neutral=neutral)


# --- the default scorecard is today's scorer -------------------------------------------------------------------

optional_days = st.one_of(st.none(), st.integers(min_value=0, max_value=400), st.sampled_from([7, 8, 30, 31, 60, 61]))
signals_strategy = st.builds(
    CSMHealthSignals,
    feature_adoption_rate=st.one_of(st.floats(min_value=0, max_value=1), st.sampled_from([0.0, 1.0, 0.35])),
    usage_trend=st.sampled_from(["growing", "stable", "declining", "inactive"]),
    login_frequency_days=optional_days,
    days_since_last_interaction=st.one_of(optional_days, st.sampled_from([90, 91])),
    stakeholder_engagement=st.sampled_from(["high", "medium", "low"]),
    nps_score=st.one_of(st.none(), st.integers(min_value=0, max_value=10)),
    invoice_payment_status=st.sampled_from(["current", "overdue_30", "overdue_60", "overdue_90_plus"]),
    days_to_renewal=st.one_of(st.none(), st.integers(min_value=-400, max_value=800), st.sampled_from([30, 31, 180])),
    seats_utilization_rate=st.one_of(st.floats(min_value=0, max_value=2), st.sampled_from([0.5, 0.8, 1.0, 1.0001])),
    open_ticket_count=st.integers(min_value=0, max_value=12),
    avg_ticket_sentiment=st.sampled_from(["positive", "neutral", "negative", "critical"]),
    escalation_count_90_days=st.integers(min_value=0, max_value=5),
    tam_health_rag=st.sampled_from([None, "GREEN", "AMBER", "RED"]),
    collections_risk=st.sampled_from([None, "GREEN", "AMBER", "RED", "CRITICAL"]),
)


@settings(max_examples=400, deadline=None)
@given(signals=signals_strategy)
def test_default_scorecard_reproduces_the_seed_scorer_exactly(signals: CSMHealthSignals) -> None:
    seed = CSMHealthScorer().score(signals, "acct-1", computed_at=NOW)
    result = score_with_scorecard(signals.model_dump(), load_default_scorecard(), "acct-1")

    assert not result.insufficient
    assert (result.score, result.rag, result.churn_risk_level, result.churn_triggered_by) == (
        seed.score,
        seed.rag,
        seed.churn_risk_level,
        seed.churn_triggered_by,
    )
    assert result.signal_breakdown == seed.signal_breakdown
    assert result.should_alert == seed.should_alert
    assert result.to_health_score(computed_at=NOW).model_dump() == seed.model_dump()


def test_default_scorecard_describes_itself() -> None:
    card = load_default_scorecard()
    assert (card.name, card.version, card.total_weight()) == ("default", "1", 100)
    assert list(card.signals)[:2] == ["feature_adoption_rate", "usage_trend"]


def test_breakdown_fields_name_the_raw_fields_behind_each_key() -> None:
    fields = breakdown_fields(load_default_scorecard())
    assert set(fields) == set(SIGNAL_MAX_POINTS) | {"collections_risk", "tam_health_rag"}
    assert fields["support_tickets"] == ("avg_ticket_sentiment", "open_ticket_count")
    assert fields["nps_score"] == ("nps_score",) and fields["tam_health_rag"] == ("tam_health_rag",)


# --- coverage instead of a hard block -----------------------------------------------------------------------------


def test_a_record_lacking_two_low_weight_signals_is_scored_with_its_coverage() -> None:
    record = {k: v for k, v in FULL.items() if k not in ("stakeholder_engagement", "seats_utilization_rate")}
    card = load_default_scorecard()

    result = score_with_scorecard(record, card, "acct-1")

    assert not result.insufficient
    assert result.coverage == 0.9
    assert result.missing_signals == ["seats_utilization_rate", "stakeholder_engagement"]
    assert "stakeholder_engagement" not in result.signal_breakdown
    earned = 10 + 10 + 7 + 10 + 10 + 6 + 10 + 2 + 2  # adoption, usage, login, interaction, invoice, tickets, ...
    assert result.score == round(earned * 100 / 90, 2)
    assert result.score == pytest.approx(sum(result.signal_breakdown.values()), abs=0.05)


def test_neutral_signals_count_as_missing_in_coverage_but_keep_their_points() -> None:
    record = {**FULL, "nps_score": None, "login_frequency_days": None}
    result = score_with_scorecard(record, load_default_scorecard(), "acct-1")
    assert result.coverage == 0.87
    assert result.signal_breakdown["login_frequency_days"] == 5
    assert result.signal_breakdown["nps_score"] == 2


def test_insufficient_only_below_the_coverage_floor() -> None:
    card = load_default_scorecard()
    sparse = {"feature_adoption_rate": 0.4, "usage_trend": "stable", "invoice_payment_status": "current"}
    below = score_with_scorecard(sparse, card, "acct-1")
    assert below.insufficient and below.score is None and below.rag is None and not below.should_alert
    assert below.coverage == 0.45  # adoption, usage, invoice; the neutral signals were not observed

    at_floor = score_with_scorecard(sparse, card.model_copy(update={"coverage_floor": 0.45}), "acct-1")
    assert not at_floor.insufficient and at_floor.score is not None
    with pytest.raises(ValueError, match="insufficient data"):
        below.to_health_score()


def test_missing_policies_neutral_zero_exclude() -> None:
    def scored(text: str) -> float | None:
        card = parse_scorecard(text).model_copy(update={"coverage_floor": 0.4})
        return score_with_scorecard({"usage_trend": "growing"}, card, "a").score

    neutral, zero, exclude = (
        scored(small()),
        scored(small(missing="zero", neutral="")),
        scored(small(missing="exclude", neutral="")),
    )
    assert (neutral, zero, exclude) == (70.0, 40.0, 100.0)


def test_an_unmappable_value_names_its_field() -> None:
    with pytest.raises(ScorecardInputError, match="usage_trend='sideways' is not one of"):
        score_with_scorecard({**FULL, "usage_trend": "sideways"}, load_default_scorecard(), "a")
    with pytest.raises(ScorecardInputError, match="login_frequency_days='often' is not a number"):
        score_with_scorecard({**FULL, "login_frequency_days": "often"}, load_default_scorecard(), "a")


# --- curves and bands ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "banded", "curved"),
    [(0, 60.0, 60.0), (7, 60.0, 53.0), (15, 30.0, 45.0), (30, 30.0, 30.0), (45, 0.0, 15.0), (90, 0.0, 0.0)],
)
def test_a_curve_interpolates_where_bands_step(days: int, banded: float, curved: float) -> None:
    record = {"login_frequency_days": days, "usage_trend": "inactive"}
    assert score_with_scorecard(record, parse_scorecard(small()), "a").signal_breakdown["login"] == banded
    assert score_with_scorecard(record, parse_scorecard(small(CURVE)), "a").signal_breakdown["login"] == curved


# --- validation errors name the field and line --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (small().replace("weight = 60", "weight = -5"), r"signals\.login\.weight \(line 12\): .*greater than or equal"),
        (
            small().replace("weight = 60", "weight = 60\nwieght = 3"),
            r"signals\.login\.wieght \(line 13\): unknown field",
        ),
        (small(missing="neutral", neutral=""), r"signals\.login \(line 10\): neutral_points goes with"),
        (small().replace("at_most = 7,", "at_most = 7, above = 3,"), r"signals\.login\.bands\[0\].*exactly one"),
        (small().replace("points = 60 }", "points = 50 }"), r"signals\.login.*best outcome must earn the full weight"),
        (small().replace("amber = 40", "amber = 80"), r"rag \(line 6\): amber \(80.0\) must be lower than green"),
        (small().replace('GREEN = "low", ', ""), r"churn.*no risk level for none\.GREEN"),
        (small().replace('version = "1"\n', ""), r"version: required field is missing"),
        (small(CURVE.replace("[60, 0.0]", "[0, 0.0]")), r"curve x values must be strictly increasing"),
        ('name = "a"\nversion = 1 1\n', r"not valid TOML: .*line 2"),
    ],
)
def test_validation_errors_name_the_field_and_line(text: str, expected: str) -> None:
    with pytest.raises(ScorecardError, match=expected):
        parse_scorecard(text, source="mine.toml")


def test_load_scorecard_reads_a_user_file_and_reports_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(small(), encoding="utf-8")
    assert load_scorecard(path).name == "small"
    with pytest.raises(ScorecardError, match="cannot read the file"):
        load_scorecard(tmp_path / "absent.toml")


# --- segments ----------------------------------------------------------------------------------------------------

SET = """
name = "acme"

[[segments]]
name = "enterprise"
scorecard = "small"
when = [{ field = "plan", in = ["enterprise"] }, { field = "arr", at_least = 100000 }]

[[segments]]
name = "onboarding"
scorecard = "small"
when = [{ field = "lifecycle_stage", in = ["onboarding"] }]

[[segments]]
name = "everyone else"
scorecard = "default"

[scorecards.small]
file = "small.toml"
"""


def test_segment_rules_pick_the_first_match_and_fall_back_to_the_default(tmp_path: Path) -> None:
    (tmp_path / "small.toml").write_text(small(), encoding="utf-8")
    (tmp_path / "set.toml").write_text(SET, encoding="utf-8")
    cards = load_scorecard_set(tmp_path / "set.toml")

    def pick(account: dict[str, Any]) -> tuple[str, str]:
        segment, card = select_scorecard(cards, account)
        return segment.name, card.name

    assert pick({"plan": "enterprise", "arr": "250000"}) == ("enterprise", "small")
    assert pick({"plan": "enterprise", "arr": 5000}) == ("everyone else", "default")
    assert pick({"plan": "standard", "lifecycle_stage": "onboarding"}) == ("onboarding", "small")
    assert pick({}) == ("everyone else", "default")


def test_a_segment_set_needs_a_catch_all_last(tmp_path: Path) -> None:
    (tmp_path / "small.toml").write_text(small(), encoding="utf-8")
    (tmp_path / "set.toml").write_text(
        SET.replace('scorecard = "default"', 'scorecard = "default"\nwhen = []\n').replace(
            'name = "onboarding"\nscorecard = "small"\nwhen = [{ field = "lifecycle_stage", in = ["onboarding"] }]',
            'name = "onboarding"\nscorecard = "small"',
        ),
        encoding="utf-8",
    )
    with pytest.raises(ScorecardError, match="only the last segment may have no conditions, not onboarding"):
        load_scorecard_set(tmp_path / "set.toml")


def test_a_single_scorecard_file_is_a_set_of_one(tmp_path: Path) -> None:
    (tmp_path / "small.toml").write_text(small(), encoding="utf-8")
    segment, card = select_scorecard(load_scorecard_set(tmp_path / "small.toml"), {"plan": "x"})
    assert (segment.name, card.name) == ("all", "small")


# --- TOML out, diff ----------------------------------------------------------------------------------------------


def test_scorecard_to_toml_round_trips() -> None:
    for card in (load_default_scorecard(), parse_scorecard(small(CURVE))):
        assert parse_scorecard(scorecard_to_toml(card)) == card


def test_scorecard_diff_lists_changed_fields() -> None:
    card = load_default_scorecard()
    changed = parse_scorecard(scorecard_to_toml(card).replace("coverage_floor = 0.5", "coverage_floor = 0.3"))
    diff = scorecard_diff(card, changed)
    assert "~ coverage_floor: 0.5 -> 0.3" in diff
    assert diff.count("\n") == 2
    assert "(no differences)" in scorecard_diff(card, card)


# --- derived signals ---------------------------------------------------------------------------------------------


def test_tenure_days_from_a_start_date() -> None:
    assert tenure_days("2025-01-01", date(2025, 3, 1)) == 59
    assert tenure_days(datetime(2025, 1, 1, 23, tzinfo=UTC), date(2025, 1, 2)) == 1
    assert tenure_days(None, date(2025, 1, 1)) is None
    assert tenure_days("2026-01-01", date(2025, 1, 1)) is None


def test_score_trend_is_the_slope_in_points_per_day_over_each_window() -> None:
    history = [(NOW - timedelta(days=d), 80 - 0.5 * d) for d in range(0, 61, 5)]
    assert score_trend(history, as_of=NOW, window_days=30) == 0.5
    trends = score_trends([*history, (NOW - timedelta(days=80), 10.0)], as_of=NOW)
    assert trends["score_trend_7d"] == 0.5
    assert trends["score_trend_90d"] is not None and trends["score_trend_90d"] > 0.5
    assert score_trend(history[-1:], as_of=NOW, window_days=30) is None


def test_a_scorecard_may_weight_tenure_and_trend() -> None:
    text = (
        small()
        .replace('field = "login_frequency_days"', 'field = "score_trend_30d"')
        .replace('direction = "lower_is_better"', 'direction = "higher_is_better"')
    )
    card = parse_scorecard(text.replace(BANDS, "curve = [[-1, 0.0], [1, 1.0]]"))
    history = [(NOW - timedelta(days=d), 50 - d) for d in range(20)]
    record = {"usage_trend": "stable", **score_trends(history, as_of=NOW)}
    assert score_with_scorecard(record, card, "a").signal_breakdown["login"] == 60.0
