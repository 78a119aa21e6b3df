"""Expansion candidates (seats, modules, integrations), adoption facts and QBR ROI metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from src.app.analysis.adoption import (
    DEFAULT_BENCHMARK_ADOPTION,
    PLAN_BENCHMARK_ADOPTION,
    UNDERUTILIZED_USAGE,
    build_adoption_facts,
    roi_metrics,
)
from src.app.analysis.expansion import (
    HEAVY_FEATURE_USAGE,
    INTEGRATION_ARR_UPLIFT,
    MODULE_ARR_UPLIFT,
    MODULES,
    PLAN_MODULES,
    TICKET_SUBJECT_MAX_CHARS,
    find_expansion_candidates,
)
from src.app.schemas import AccountRecord, CSMHealthScore, CSMHealthSignals, ExpansionCandidate


def account(**fields: Any) -> AccountRecord:
    return AccountRecord.model_validate({"account_id": "acct-1", "name": "Northwind Logistics", **fields})


def of_type(candidates: list[ExpansionCandidate], kind: str) -> list[ExpansionCandidate]:
    return [candidate for candidate in candidates if candidate.opportunity_type == kind]


def signals(**fields: Any) -> CSMHealthSignals:
    base = {
        "feature_adoption_rate": 0.5,
        "usage_trend": "stable",
        "stakeholder_engagement": "high",
        "invoice_payment_status": "current",
        "seats_utilization_rate": 0.5,
    }
    return CSMHealthSignals(**{**base, **fields})


@pytest.mark.parametrize(
    ("active", "extra_seats", "confidence"),
    [(90, 1, "medium"), (95, 5, "medium"), (99, 9, "medium"), (100, 10, "high"), (120, 32, "high")],
)
def test_seats_candidate_leaves_ten_percent_headroom(active: int, extra_seats: int, confidence: str) -> None:
    (candidate,) = find_expansion_candidates(account(arr=60_000, seats_purchased=100, seats_active=active))
    assert candidate.opportunity_type == "seats"
    assert candidate.estimated_arr_impact == 600 * extra_seats
    assert candidate.confidence == confidence
    assert f"{active} of 100 purchased seats are active" in candidate.evidence[0]
    assert candidate.evidence[1] == "$60,000 ARR over 100 seats is $600 per seat"
    more = "1 more seat leaves" if extra_seats == 1 else f"{extra_seats} more seats leave"
    assert candidate.evidence[2] == f"{more} 10% headroom over active users"


@pytest.mark.parametrize(("purchased", "active"), [(100, 89), (100, 0), (0, 0), (None, 50)])
def test_no_seats_candidate_below_ninety_percent_or_without_counts(purchased: int | None, active: int) -> None:
    assert find_expansion_candidates(account(arr=60_000, seats_purchased=purchased, seats_active=active)) == []


def test_seats_candidate_from_the_utilization_signal_when_counts_are_missing() -> None:
    (candidate,) = find_expansion_candidates(account(arr=100_000), signals(seats_utilization_rate=1.0))
    assert candidate.opportunity_type == "seats"
    assert candidate.confidence == "high"
    assert candidate.estimated_arr_impact == 10_000
    assert "100%" in candidate.evidence[0]
    assert find_expansion_candidates(account(arr=100_000), signals(seats_utilization_rate=0.89)) == []


def test_seat_counts_take_precedence_over_the_signal() -> None:
    candidates = find_expansion_candidates(
        account(arr=100_000, seats_purchased=100, seats_active=50), signals(seats_utilization_rate=1.0)
    )
    assert candidates == []


def test_module_candidate_from_heavy_use_of_its_signal_features() -> None:
    usage = {"reports": 900, "dashboards": HEAVY_FEATURE_USAGE, "exports": HEAVY_FEATURE_USAGE - 1}
    (candidate,) = find_expansion_candidates(account(arr=40_000, plan="standard", feature_usage=usage))
    assert candidate.opportunity_type == "module"
    assert candidate.confidence == "medium"
    assert candidate.estimated_arr_impact == 40_000 * MODULE_ARR_UPLIFT
    assert candidate.evidence[0] == "the Standard plan does not include the analytics module"
    assert candidate.evidence[1:] == [
        "Reports used 900 times (heavy use from 500)",
        "Dashboards used 500 times (heavy use from 500)",
    ]


def test_module_candidate_with_every_signal_feature_heavy_is_high_confidence() -> None:
    usage = {"workflows": 2000, "rules": 1500, "bulk_actions": 700}
    (candidate,) = find_expansion_candidates(account(arr=80_000, plan="professional", feature_usage=usage))
    assert candidate.confidence == "high"
    assert "automation module" in candidate.evidence[0]


def test_no_module_candidate_when_the_plan_includes_it_or_use_is_light() -> None:
    heavy_analytics = {"reports": 900, "dashboards": 900, "exports": 900}
    assert find_expansion_candidates(account(plan="professional", feature_usage=heavy_analytics)) == []
    assert find_expansion_candidates(account(plan="Enterprise", feature_usage=heavy_analytics)) == []
    assert find_expansion_candidates(account(plan="standard", feature_usage={"reports": 5000})) == []


def test_modules_and_plans_are_consistent() -> None:
    included = {module for modules in PLAN_MODULES.values() for module in modules}
    assert included <= set(MODULES)
    assert all(len(features) >= 2 for features in MODULES.values())


@pytest.mark.parametrize(
    "text",
    [
        "Can you connect to Salesforce?",
        "HubSpot sync please",
        "Create JIRA issues",
        "Post to a slack channel",
        "Our API calls fail",
        "webhooks for task updates",
        "Integrations roadmap?",
    ],
)
def test_integration_keywords_match_case_insensitively(text: str) -> None:
    (candidate,) = find_expansion_candidates(account(arr=20_000, tickets=[{"subject": text}]))
    assert candidate.opportunity_type == "integration"
    assert candidate.confidence == "medium"
    assert candidate.estimated_arr_impact == 20_000 * INTEGRATION_ARR_UPLIFT
    assert text in candidate.evidence[0]


@pytest.mark.parametrize("text", ["Rapid growth", "Capital expenditure report", "Password reset", ""])
def test_words_that_merely_contain_a_keyword_do_not_match(text: str) -> None:
    assert find_expansion_candidates(account(tickets=[{"subject": text, "body": text}])) == []


def test_integration_request_in_the_body_quotes_the_subject() -> None:
    tickets = [
        {"subject": "Question", "body": "Is there a HubSpot integration?"},
        {"subject": "", "body": "Could you connect to Jira?"},
        {"subject": "Invoice copy", "body": "Please resend it."},
    ]
    (candidate,) = find_expansion_candidates(account(tickets=tickets))
    assert candidate.confidence == "high"
    assert candidate.evidence == [
        "ticket “Question” mentions HubSpot and an integration",
        "ticket “(no subject)” mentions connecting to another tool and Jira",
    ]


def test_ticket_subjects_are_truncated_in_evidence() -> None:
    subject = "Salesforce " + "x" * 300
    (candidate,) = find_expansion_candidates(account(tickets=[{"subject": subject}]))
    quoted = candidate.evidence[0].split("“")[1].split("”")[0]
    assert len(quoted) == TICKET_SUBJECT_MAX_CHARS
    assert quoted.startswith("Salesforce xxx")


def test_candidates_come_in_a_fixed_order() -> None:
    record = account(
        arr=50_000,
        plan="starter",
        seats_purchased=10,
        seats_active=10,
        feature_usage={"reports": 800, "dashboards": 800},
        tickets=[{"subject": "Slack alerts?"}],
    )
    assert [c.opportunity_type for c in find_expansion_candidates(record)] == [
        "seats",
        "module",
        "integration",
    ]


def test_adoption_facts() -> None:
    record = account(
        plan="professional",
        features_available=["contacts", "reports", "sso", "audit_log", "rules"],
        feature_usage={"contacts": 400, "reports": 900, "sso": 3, "beta_ai": 20, "rules": 0},
    )
    facts = build_adoption_facts(record)
    assert facts.features_used == ["reports", "contacts", "beta_ai", "sso"]
    assert facts.adoption_rate == 0.6
    assert facts.underutilized_features == ["audit_log", "rules", "sso"]
    assert facts.benchmark_comparison == {
        "account_adoption_rate": 0.6,
        "plan_benchmark": PLAN_BENCHMARK_ADOPTION["professional"],
        "delta": round(0.6 - PLAN_BENCHMARK_ADOPTION["professional"], 4),
    }
    assert facts.feature_usage["reports"] == 900


def test_underutilized_threshold_is_exclusive() -> None:
    record = account(
        features_available=["a", "b"], feature_usage={"a": UNDERUTILIZED_USAGE, "b": UNDERUTILIZED_USAGE - 1}
    )
    assert build_adoption_facts(record).underutilized_features == ["b"]


def test_adoption_without_available_features_is_zero() -> None:
    facts = build_adoption_facts(account(feature_usage={"reports": 10}))
    assert facts.adoption_rate == 0
    assert facts.features_used == ["reports"]
    assert facts.underutilized_features == []


def test_adoption_benchmarks_default_and_override() -> None:
    record = account(plan="custom-deal", features_available=["a"], feature_usage={"a": 50})
    assert build_adoption_facts(record).benchmark_comparison["plan_benchmark"] == DEFAULT_BENCHMARK_ADOPTION
    overridden = build_adoption_facts(record, benchmarks={"custom-deal": 0.8}).benchmark_comparison
    assert overridden == {"account_adoption_rate": 1.0, "plan_benchmark": 0.8, "delta": 0.2}


def test_roi_metrics_with_a_score() -> None:
    record = account(
        arr=48_000,
        seats_purchased=40,
        seats_active=34,
        usage_history=[20, 24, 26, 30, 31, 34],
        tickets=[{"status": "open"}, {"status": "Closed"}, {"status": "pending"}, {"status": "resolved"}],
    )
    score = CSMHealthScore(
        account_id="acct-1",
        score=72.5,
        rag="GREEN",
        churn_risk_level="low",
        signal_breakdown={},
        computed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert roi_metrics(record, score) == {
        "arr": 48_000,
        "seats_purchased": 40,
        "seats_active": 34,
        "seat_utilization": 0.85,
        "active_users_start": 20,
        "active_users_end": 34,
        "active_user_growth_pct": 70.0,
        "open_tickets": 2,
        "health_score": 72.5,
        "health_rag": "GREEN",
    }


def test_roi_metrics_without_enough_data() -> None:
    metrics = roi_metrics(account(usage_history=[12]), None)
    assert metrics["seats_purchased"] == "n/a"
    assert metrics["seat_utilization"] == "n/a"
    assert metrics["active_user_growth_pct"] == "n/a"
    assert "health_score" not in metrics
    assert roi_metrics(account(usage_history=[0, 5]), None)["active_user_growth_pct"] == "n/a"
    assert roi_metrics(account(usage_history=[50, 40]), None)["active_user_growth_pct"] == -20.0
