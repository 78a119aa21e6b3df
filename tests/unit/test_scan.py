"""The batch core of a health scan: independent accounts, errors collected, never a stopped batch."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from src.app.analysis.health import CSMHealthScorer
from src.app.analysis.scan import AccountError, ScanOutcome, score_book
from src.app.analysis.signals import signals_from_record
from src.app.scan.page import _with_valid_identity
from src.app.schemas import CSMHealthScore, trusted_score

NOW = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
TZ = ZoneInfo("UTC")

HEALTHY: dict[str, Any] = {
    "account_id": "acct-healthy",
    "status": "active",
    "contract_end_date": "2027-09-01",
    "feature_adoption_rate": 0.9,
    "usage_trend": "growing",
    "login_frequency_days": 2,
    "days_since_last_interaction": 10,
    "stakeholder_engagement": "high",
    "nps_score": 9,
    "invoice_payment_status": "current",
    "seats_utilization_rate": 0.85,
}
STRUGGLING: dict[str, Any] = {
    "account_id": "acct-struggling",
    "status": "active",
    "contract_end_date": "2026-12-10",
    "feature_adoption_rate": 0.2,
    "usage_trend": "declining",
    "login_frequency_days": 45,
    "stakeholder_engagement": "low",
    "invoice_payment_status": "overdue_60",
    "seats_utilization_rate": 0.3,
    "open_ticket_count": 4,
    "avg_ticket_sentiment": "negative",
    "escalation_count_90_days": 3,
    "collections_risk": "RED",
    "tam_health_rag": "AMBER",
}


class ExplodingRecord(Mapping[str, Any]):
    """A record whose fields cannot be read (e.g. a broken driver row)."""

    def __getitem__(self, key: str) -> Any:
        if key == "account_id":
            return "acct-exploding"
        raise RuntimeError("connection reset while reading the row")

    def get(self, key: str, default: Any = None) -> Any:
        return self[key]

    def __iter__(self) -> Iterator[str]:
        return iter(["account_id", "usage_trend"])

    def __len__(self) -> int:
        return 2


def scan(records: list[Mapping[str, Any]], previous: Mapping[str, CSMHealthScore] | None = None) -> ScanOutcome:
    return score_book(records, scorer=CSMHealthScorer(), previous=previous or {}, now=NOW, tz=TZ)


def test_bad_records_do_not_stop_the_batch() -> None:
    missing = {"account_id": "acct-missing", "usage_trend": "stable", "feature_adoption_rate": 0.5}
    invalid = {**HEALTHY, "account_id": "acct-invalid", "feature_adoption_rate": 65}
    no_id = {key: value for key, value in HEALTHY.items() if key != "account_id"}
    records = [HEALTHY, missing, invalid, no_id, ExplodingRecord(), STRUGGLING]

    outcome = scan(records)

    assert [score.account_id for score in outcome.scores] == ["acct-healthy", "acct-struggling"]
    errors = {error.account_id: error for error in outcome.errors}
    assert list(errors) == ["acct-missing", "acct-invalid", "<missing account_id #3>", "acct-exploding"]
    assert errors["acct-missing"].kind == "insufficient_data"
    assert errors["acct-missing"].problems == [
        "coverage 35% is below the floor of scorecard 'default' (50%); missing signals: login_frequency_days, "
        "days_since_last_interaction, invoice_payment_status, support_tickets, days_to_renewal, "
        "seats_utilization_rate, stakeholder_engagement, nps_score, escalation_count_90_days"
    ]
    assert errors["acct-invalid"].kind == "invalid_data"
    assert "feature_adoption_rate=65 is out of range (must be 0..1)" in errors["acct-invalid"].message
    assert errors["<missing account_id #3>"].kind == "invalid_data"
    assert errors["acct-exploding"].kind == "error"
    assert "RuntimeError: connection reset" in errors["acct-exploding"].message


def test_accounts_do_not_leak_into_each_other() -> None:
    scorer = CSMHealthScorer()
    alone = {
        record["account_id"]: scorer.score(signals_from_record(record, now=NOW, tz=TZ), record["account_id"])
        for record in (HEALTHY, STRUGGLING)
    }

    forward = {score.account_id: score for score in scan([HEALTHY, STRUGGLING]).scores}
    backward = {score.account_id: score for score in scan([STRUGGLING, HEALTHY]).scores}

    for account_id, expected in alone.items():
        for batch in (forward, backward):
            assert batch[account_id].score == expected.score
            assert batch[account_id].signal_breakdown == expected.signal_breakdown
            assert batch[account_id].churn_risk_level == expected.churn_risk_level
    assert forward["acct-healthy"].rag == "GREEN"
    assert "collections_risk" not in forward["acct-healthy"].signal_breakdown
    assert forward["acct-struggling"].rag == "RED"
    assert forward["acct-struggling"].churn_triggered_by == "both"


def test_previous_scores_are_matched_by_account_id() -> None:
    first = {score.account_id: score for score in scan([HEALTHY, STRUGGLING]).scores}
    improved = {**STRUGGLING, "invoice_payment_status": "current"}

    second = {score.account_id: score for score in scan([HEALTHY, improved], previous=first).scores}

    assert second["acct-healthy"].previous_score == first["acct-healthy"].score
    assert second["acct-healthy"].signal_deltas == {}
    assert second["acct-struggling"].previous_score == first["acct-struggling"].score
    assert second["acct-struggling"].signal_deltas["invoice_payment_status"] == 7


def test_scores_are_stamped_with_the_scan_time_and_derive_renewal_from_contract_end() -> None:
    outcome = scan([STRUGGLING])
    (score,) = outcome.scores
    assert score.computed_at == NOW
    assert score.signal_breakdown["days_to_renewal"] == 1  # 16 days to 2026-12-10


def test_inactive_statuses_are_still_scored_when_given() -> None:
    outcome = scan([{**HEALTHY, "status": "churned"}, {**HEALTHY, "account_id": "t", "status": "trial"}])
    assert len(outcome.scores) == 2
    assert outcome.errors == []


def test_empty_book() -> None:
    outcome = scan([])
    assert outcome.scores == [] and outcome.errors == []


def test_account_error_is_json_safe() -> None:
    error = AccountError(account_id="a", kind="invalid_data", message="m", problems=["p"])
    assert AccountError.model_validate_json(error.model_dump_json()) == error


def test_a_trusted_score_needs_exactly_the_score_fields() -> None:
    with pytest.raises(ValueError, match="needs exactly the fields"):
        trusted_score({"account_id": "a", "score": 50.0})


def test_a_trusted_score_is_what_model_construct_makes_with_a_fields_set_of_its_own() -> None:
    score = score_book([HEALTHY], scorer=CSMHealthScorer(), previous={}, now=NOW, tz=TZ).scores[0]
    fields = {name: getattr(score, name) for name in CSMHealthScore.model_fields}
    trusted, other = trusted_score(dict(fields)), trusted_score(dict(fields))
    constructed = CSMHealthScore.model_construct(**fields)
    assert trusted == constructed
    assert trusted.model_dump_json() == constructed.model_dump_json()
    assert trusted.model_fields_set == constructed.model_fields_set
    assert (trusted.model_extra, trusted.__pydantic_private__) == (None, None)
    trusted.model_fields_set.discard("score")
    assert other.model_fields_set == constructed.model_fields_set


def test_a_page_keeps_the_scores_of_plain_identities_and_judges_the_last_record_of_an_id() -> None:
    healthy = {**HEALTHY, "name": "Healthy"}
    records = [
        {**healthy, "account_id": "a", "arr": "lots"},  # an earlier copy of "a": the last one decides
        {**healthy, "account_id": "a"},
        {**healthy, "account_id": "b", "seats_active": -1},  # not essential: scored, and reported
        {**healthy, "account_id": "c", "name": ""},  # essential: dropped
    ]
    scores = score_book(records, scorer=CSMHealthScorer(), previous={}, now=NOW, tz=TZ).scores
    kept, errors = _with_valid_identity(scores, records)
    assert [score.account_id for score in kept] == ["a", "a", "b"]
    assert [(error["account_id"], error["stage"]) for error in errors] == [("b", "identity"), ("c", "score_accounts")]
    assert _with_valid_identity(scores[1:3], records[1:2]) == (scores[1:3], [])
