"""The vectorised page scorer against the per-account reference: identical scores on random and boundary signals."""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from src.app.analysis.health import CSMHealthScorer
from src.app.analysis.health_batch import python_round, score_batch
from src.app.analysis.scan import BATCH_MIN_RECORDS, score_book, score_record
from src.app.analysis.signals import AccountDataError
from src.app.schemas import CSMHealthScore

NOW = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
TZ = ZoneInfo("Europe/Berlin")
COMPARED = (
    "score",
    "rag",
    "churn_risk_level",
    "churn_triggered_by",
    "signal_breakdown",
    "should_alert",
    "coverage",
    "missing_signals",
    "previous_score",
    "signal_deltas",
    "scorecard_name",
    "scorecard_version",
    "computed_at",
)
EPS = 1e-9


def _near(*edges: float) -> list[float]:
    return [value for edge in edges for value in (edge - EPS, edge, edge + EPS)]


MISSING = st.sampled_from([None, "<absent>"])
INTS = {
    "login_frequency_days": [0, 1, 7, 8, 29, 30, 31, 60, 61, 400],
    "days_since_last_interaction": [0, 30, 31, 60, 61, 90, 91, 1000],
    "nps_score": [0, 4, 5, 6, 7, 8, 9, 10],
    "days_to_renewal": [-5, 0, 29, 30, 31, 59, 60, 61, 90, 91, 180, 181, 400],
    "open_ticket_count": [0, 1, 4, 5, 6, 50],
    "escalation_count_90_days": [0, 1, 2, 9],
}
CATEGORIES = {
    "usage_trend": ["growing", "stable", "declining", "inactive"],
    "stakeholder_engagement": ["high", "medium", "low"],
    "invoice_payment_status": ["current", "overdue_30", "overdue_60", "overdue_90_plus"],
    "avg_ticket_sentiment": ["positive", "neutral", "negative", "critical"],
    "tam_health_rag": ["GREEN", "AMBER", "RED"],
    "collections_risk": ["GREEN", "AMBER", "RED", "CRITICAL"],
}
REQUIRED = {"feature_adoption_rate", "seats_utilization_rate", "usage_trend", "stakeholder_engagement"}
REQUIRED |= {"invoice_payment_status"}
BAD = st.sampled_from(["7", True, 1.5, -1, float("nan"), float("inf"), [], "unknown", 10**30])


def _value(name: str, *, valid_only: bool) -> st.SearchStrategy[Any]:
    if name == "feature_adoption_rate":
        good: st.SearchStrategy[Any] = st.one_of(st.floats(0, 1), st.sampled_from([0, 1, 0.0, 1.0, 0.5, 1 - EPS, EPS]))
    elif name == "seats_utilization_rate":
        good = st.one_of(st.floats(0, 2), st.sampled_from([0, 2, *_near(0.5, 0.8, 1.0), 2.0]))
    elif name in INTS:
        top = 10 if name == "nps_score" else 500
        good = st.one_of(st.sampled_from(INTS[name]), st.integers(0, top))
    else:
        good = st.sampled_from(CATEGORIES[name])
    options = [good] if name in REQUIRED else [good, MISSING]
    if not valid_only:
        options += [MISSING, BAD]
    return st.one_of(*options)


@st.composite
def records(draw: st.DrawFn, *, valid_only: bool) -> dict[str, Any]:
    record: dict[str, Any] = {"account_id": f"acct-{draw(st.integers(0, 10**6))}", "name": "Acme"}
    for name in [*INTS, *CATEGORIES, "feature_adoption_rate", "seats_utilization_rate"]:
        value = draw(_value(name, valid_only=valid_only))
        if value != "<absent>":
            record[name] = value
    if draw(st.booleans()):
        record["contract_end_date"] = draw(st.sampled_from(["2027-01-23", "2026-12-24", "2026-11-24", "not a date"]))
    return record


def _reference(record: dict[str, Any], scorer: CSMHealthScorer, previous: CSMHealthScore | None) -> Any:
    try:
        return score_record(record, record["account_id"], scorer=scorer, previous=previous, now=NOW, tz=TZ)
    except AccountDataError as error:
        return error.kind


def _assert_same(batch: CSMHealthScore, reference: Any) -> None:
    assert isinstance(reference, CSMHealthScore), f"batch scored what the reference refused: {reference}"
    for name in COMPARED:
        assert getattr(batch, name) == getattr(reference, name), name
    assert batch.model_dump_json() == reference.model_dump_json()


@settings(max_examples=300, deadline=None)
@given(page=st.lists(records(valid_only=False), min_size=1, max_size=12), seed=st.integers(0, 3))
def test_batch_scores_equal_the_reference(page: list[dict[str, Any]], seed: int) -> None:
    scorer = CSMHealthScorer()
    yesterday = NOW - timedelta(days=1)
    previous = {
        r["account_id"]: ref
        for r in page[seed::4]
        if isinstance(ref := _reference(r, scorer, None), CSMHealthScore)
        and (ref := ref.model_copy(update={"computed_at": yesterday, "score": max(ref.score - 1, 0)}))
    }
    batch = score_batch(page, scorer=scorer, previous=previous, now=NOW, tz=TZ)
    for record, scored in zip(page, batch, strict=True):
        if scored is not None:
            _assert_same(scored, _reference(record, scorer, previous.get(record["account_id"])))


@settings(max_examples=200, deadline=None)
@given(page=st.lists(records(valid_only=True), min_size=1, max_size=12))
def test_plainly_valid_records_are_all_scored_at_once(page: list[dict[str, Any]]) -> None:
    page = [{k: v for k, v in r.items() if k != "contract_end_date" or v != "not a date"} for r in page]
    scorer = CSMHealthScorer(green_threshold=75, amber_threshold=45, churn_window_days=90)
    batch = score_batch(page, scorer=scorer, previous={}, now=NOW, tz=TZ)
    assert all(scored is not None for scored in batch)
    for record, scored in zip(page, batch, strict=True):
        assert scored is not None
        _assert_same(scored, _reference(record, scorer, None))


THRESHOLD_TARGETS = [39.997, 69.996, 40.004, *_near(40, 70), 0.004, 99.996]


@settings(max_examples=300, deadline=None)
@given(base=records(valid_only=True), target=st.sampled_from(THRESHOLD_TARGETS))
def test_scores_at_the_rag_thresholds(base: dict[str, Any], target: float) -> None:
    """Adoption is chosen so that the unrounded score lands on (or within 1e-9 of) a threshold."""
    base = {k: v for k, v in base.items() if k not in {"collections_risk", "tam_health_rag", "contract_end_date"}}
    scorer = CSMHealthScorer()
    zero = _reference({**base, "feature_adoption_rate": 0.0}, scorer, None)
    assert isinstance(zero, CSMHealthScore)
    others = sum(v for k, v in zero.signal_breakdown.items() if k != "feature_adoption_rate")
    rate = (target - others) / 20
    if not 0 <= rate <= 1:
        return
    record = {**base, "feature_adoption_rate": rate}
    (scored,) = score_batch([record], scorer=scorer, previous={}, now=NOW, tz=TZ)
    assert scored is not None
    _assert_same(scored, _reference(record, scorer, None))


POOR = {  # 28 points without adoption
    "usage_trend": "growing",
    "stakeholder_engagement": "low",
    "invoice_payment_status": "current",
    "avg_ticket_sentiment": "critical",
    "seats_utilization_rate": 0.1,
    "escalation_count_90_days": 5,
    "login_frequency_days": 100,
    "days_since_last_interaction": 100,
    "nps_score": 0,
    "days_to_renewal": 10,
}
MIDDLING = {  # 53 points without adoption
    "usage_trend": "stable",
    "stakeholder_engagement": "medium",
    "invoice_payment_status": "overdue_30",
    "avg_ticket_sentiment": "neutral",
    "seats_utilization_rate": 0.6,
    "escalation_count_90_days": 1,
    "login_frequency_days": 1,
    "days_since_last_interaction": 70,
    "nps_score": 6,
    "days_to_renewal": 100,
}


@pytest.mark.parametrize(
    ("base", "target", "rag"),
    [(POOR, 39.997, "RED"), (POOR, 40 - EPS, "RED"), (POOR, 40, "AMBER"), (MIDDLING, 69.996, "AMBER")],
)
def test_batch_thresholds_apply_to_the_unrounded_score(base: dict[str, Any], target: float, rag: str) -> None:
    record: dict[str, Any] = {"account_id": "acct-1", **base}
    zero = _reference({**record, "feature_adoption_rate": 0.0}, CSMHealthScorer(), None)
    record["feature_adoption_rate"] = (target - zero.score) / 20
    (scored,) = score_batch([record], scorer=CSMHealthScorer(), previous={}, now=NOW, tz=TZ)
    assert scored is not None
    _assert_same(scored, _reference(record, CSMHealthScorer(), None))
    assert (scored.score, scored.rag) == (round(target, 2), rag)  # 39.997 is shown as 40.0 and is RED


def test_score_book_uses_the_batch_for_a_page_and_keeps_errors_per_account() -> None:
    good = {
        "feature_adoption_rate": 0.5,
        "usage_trend": "stable",
        "stakeholder_engagement": "medium",
        "invoice_payment_status": "current",
        "seats_utilization_rate": 0.7,
    }
    page = [{"account_id": f"a{i:03}", **good} for i in range(BATCH_MIN_RECORDS)]
    page += [{"account_id": "bad", **good, "nps_score": 11}, {"name": "no id"}]
    outcome = score_book(page, scorer=CSMHealthScorer(), previous={}, now=NOW, tz=TZ)
    one_by_one = [_reference(r, CSMHealthScorer(), None) for r in page[:BATCH_MIN_RECORDS]]
    assert [s.model_dump() for s in outcome.scores] == [s.model_dump() for s in one_by_one]
    assert [(e.account_id, e.kind) for e in outcome.errors] == [
        ("bad", "invalid_data"),
        ("<missing account_id #33>", "invalid_data"),
    ]


HALVES = st.builds(  # a number of hundredths and a half, and its float neighbours
    lambda cents, toward: math.nextafter((cents + 0.5) / 100, toward),
    st.integers(-(10**6), 10**6),
    st.sampled_from([-math.inf, 0.0, math.inf]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(), HALVES, st.floats(-1e6, 1e6), st.sampled_from([0.125, -0.0, 2.0**52 / 100, 1e16 + 2])),
        min_size=1,
        max_size=40,
    )
)
def test_rounding_a_column_is_pythons_round_bit_for_bit(values: list[float]) -> None:
    rounded = python_round(np.array(values, dtype=np.float64)).tolist()
    expected = [round(value, 2) for value in values]
    assert [struct.pack("<d", value) for value in rounded] == [struct.pack("<d", value) for value in expected]
