"""The shipped sample book: deterministic, committed as generated, covering every demo case, date-shifted."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from src.app.analysis.expansion import find_expansion_candidates
from src.app.analysis.health import CSMHealthScorer
from src.app.analysis.scan import ScanOutcome, score_book
from src.app.analysis.signals import parse_account, signals_from_record
from src.app.data.sample_book import (
    BAD_RECORDS,
    INJECTION_ACCOUNTS,
    PLAN_FEATURES,
    SAMPLE_BOOK_AS_OF,
    SAMPLE_BOOK_FILE,
    SAMPLE_BOOK_PACKAGE,
    SAMPLE_BOOK_SEED,
    SAMPLE_BOOK_SIZE,
    generate_accounts,
    load_sample_book,
    render_sample_book,
)
from src.app.schemas import CSMHealthScore

UTC_ZONE = ZoneInfo("UTC")
AS_OF_MORNING = datetime.combine(SAMPLE_BOOK_AS_OF, time(7, 0), tzinfo=UTC)


def committed_text() -> str:
    return resources.files(SAMPLE_BOOK_PACKAGE).joinpath(SAMPLE_BOOK_FILE).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def book() -> list[dict[str, Any]]:
    return load_sample_book(today=SAMPLE_BOOK_AS_OF)


@pytest.fixture(scope="module")
def active(book: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [account for account in book if account["status"] == "active"]


@pytest.fixture(scope="module")
def outcome(active: list[dict[str, Any]]) -> ScanOutcome:
    return score_book(active, scorer=CSMHealthScorer(), previous={}, now=AS_OF_MORNING, tz=UTC_ZONE)


@pytest.fixture(scope="module")
def scores(outcome: ScanOutcome) -> dict[str, CSMHealthScore]:
    return {score.account_id: score for score in outcome.scores}


def test_regeneration_equals_the_committed_file() -> None:
    accounts = generate_accounts(SAMPLE_BOOK_SIZE, seed=SAMPLE_BOOK_SEED, as_of=SAMPLE_BOOK_AS_OF)
    assert render_sample_book(accounts, as_of=SAMPLE_BOOK_AS_OF) == committed_text()


def test_generation_is_deterministic_per_seed() -> None:
    first = generate_accounts(50, seed=11, as_of=SAMPLE_BOOK_AS_OF)
    assert generate_accounts(50, seed=11, as_of=SAMPLE_BOOK_AS_OF) == first
    assert generate_accounts(50, seed=12, as_of=SAMPLE_BOOK_AS_OF) != first


def test_file_format_and_size() -> None:
    text = committed_text()
    data = json.loads(text)
    assert set(data) == {"as_of", "accounts"}
    assert data["as_of"] == SAMPLE_BOOK_AS_OF.isoformat()
    assert len(data["accounts"]) == SAMPLE_BOOK_SIZE
    assert len(text.encode()) < 1_500_000


def test_identity_fields(book: list[dict[str, Any]]) -> None:
    ids = [account["account_id"] for account in book]
    assert ids == [f"acct-{index:04d}" for index in range(1, SAMPLE_BOOK_SIZE + 1)]
    assert len({account["name"] for account in book}) == len(book)
    assert all(account["rep_email"].endswith("@example.com") for account in book)
    assert all(account["ae_email"].endswith("@example.com") for account in book)
    assert all(account["chat_space"].startswith("#cs-") for account in book)
    assert {account["plan"] for account in book} == set(PLAN_FEATURES)
    statuses = Counter(account["status"] for account in book)
    assert statuses["active"] > 0.8 * len(book)
    assert statuses["churned"] > 0 and statuses["trial"] > 0
    arrs = [account["arr"] for account in book]
    assert 5_000 <= min(arrs) < 10_000 and 200_000 < max(arrs) <= 500_000


def test_days_to_renewal_is_never_stored_and_contract_ends_are_spread(book: list[dict[str, Any]]) -> None:
    assert all("days_to_renewal" not in account for account in book)
    offsets = [(date.fromisoformat(a["contract_end_date"]) - SAMPLE_BOOK_AS_OF).days for a in book]
    assert -10 <= min(offsets) < 0
    assert 350 < max(offsets) <= 400


def test_detail_fields_are_consistent_with_the_signals(active: list[dict[str, Any]]) -> None:
    for account in active:
        if account["account_id"] in BAD_RECORDS:
            continue
        usage = account["feature_usage"]
        assert account["features_available"] == PLAN_FEATURES[account["plan"]]
        assert set(usage) == set(account["features_available"])
        used = sum(count > 0 for count in usage.values())
        assert account["feature_adoption_rate"] == round(used / len(usage), 2)
        assert account["seats_utilization_rate"] == round(account["seats_active"] / account["seats_purchased"], 2)
        assert account["open_ticket_count"] == sum(t["status"] == "open" for t in account["tickets"])
        assert len(account["usage_history"]) == 6
        history = account["usage_history"]
        assert history[-1] == max(account["seats_active"], 1)
        if account["usage_trend"] == "growing":
            assert history[0] <= history[-1]
        if account["usage_trend"] in ("declining", "inactive"):
            assert history[0] >= history[-1]


def test_every_rag_state_has_sizable_counts(scores: dict[str, CSMHealthScore]) -> None:
    rags = Counter(score.rag for score in scores.values())
    assert rags["GREEN"] >= 60 and rags["AMBER"] >= 30 and rags["RED"] >= 20


def test_every_churn_trigger_occurs(scores: dict[str, CSMHealthScore]) -> None:
    cases = Counter((score.churn_risk_level, score.churn_triggered_by) for score in scores.values())
    assert cases["critical", "both"] >= 3
    assert cases["high", "contract_proximity"] >= 3
    assert cases["critical", "contract_proximity"] >= 1
    assert cases["high", "behavioral"] >= 3
    assert cases["medium", "behavioral"] >= 3
    assert cases["low", None] >= 60
    assert cases["medium", None] >= 10


def test_at_least_ten_amber_or_red_accounts_renew_within_sixty_days(
    active: list[dict[str, Any]], scores: dict[str, CSMHealthScore]
) -> None:
    renewing = [
        account["account_id"]
        for account in active
        if account["account_id"] in scores
        and scores[account["account_id"]].rag != "GREEN"
        and (date.fromisoformat(account["contract_end_date"]) - SAMPLE_BOOK_AS_OF).days <= 60
    ]
    assert len(renewing) >= 10


def test_clear_expansion_candidates_of_every_type(
    active: list[dict[str, Any]], scores: dict[str, CSMHealthScore]
) -> None:
    found: Counter[str] = Counter()
    for account in active:
        score = scores.get(account["account_id"])
        if score is None or score.rag == "RED":
            continue
        for candidate in find_expansion_candidates(parse_account(account)):
            if candidate.confidence != "low":
                found[candidate.opportunity_type] += 1
    assert found["seats"] >= 5 and found["module"] >= 5 and found["integration"] >= 5


def test_exactly_the_deliberately_bad_records_fail(outcome: ScanOutcome) -> None:
    errors = {error.account_id: error for error in outcome.errors}
    assert set(errors) == set(BAD_RECORDS) - {"acct-0017"}
    partial = next(score for score in outcome.scores if score.account_id == "acct-0017")  # scored with coverage
    assert (partial.coverage, partial.missing_signals) == (0.9, ["invoice_payment_status"])
    assert errors["acct-0058"].problems == ["feature_adoption_rate=65 is out of range (must be 0..1)"]
    assert errors["acct-0123"].problems == ["usage_trend='sideways' is not one of growing, stable, declining, inactive"]


def test_prompt_injection_attempts_are_present_in_customer_text(book: list[dict[str, Any]]) -> None:
    by_id = {account["account_id"]: account for account in book}
    for account_id in INJECTION_ACCOUNTS:
        account = by_id[account_id]
        assert account["status"] == "active"
        assert "Ignore previous instructions" in account["notes"]
        assert "attacker@evil.test" in account["notes"]
        assert any("ceo@evil.test" in ticket["body"] for ticket in account["tickets"])
    assert all("evil.test" not in account["rep_email"] + account["ae_email"] for account in book)


def test_healthy_accounts_look_healthy(active: list[dict[str, Any]], scores: dict[str, CSMHealthScore]) -> None:
    by_id = {account["account_id"]: account for account in active}
    green = [by_id[account_id] for account_id, score in scores.items() if score.rag == "GREEN"]
    red = [by_id[account_id] for account_id, score in scores.items() if score.rag == "RED"]
    share_current = sum(a.get("invoice_payment_status") == "current" for a in green) / len(green)
    assert share_current > 0.8
    assert sum(a.get("invoice_payment_status") == "current" for a in red) / len(red) < 0.3
    assert _mean(a["feature_adoption_rate"] for a in green) > _mean(a["feature_adoption_rate"] for a in red) + 0.3


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items)


def test_load_shifts_contract_dates_to_today() -> None:
    today = SAMPLE_BOOK_AS_OF + timedelta(days=45)
    original = json.loads(committed_text())["accounts"]
    shifted = load_sample_book(today=today)
    for before, after in zip(original, shifted, strict=True):
        end_before = date.fromisoformat(before["contract_end_date"])
        assert date.fromisoformat(after["contract_end_date"]) == end_before + timedelta(days=45)
        assert {**after, "contract_end_date": None} == {**before, "contract_end_date": None}


def test_the_demo_behaves_the_same_on_any_day() -> None:
    later = date(2027, 3, 1)
    now = datetime.combine(later, time(7, 0), tzinfo=UTC)
    for original, shifted in zip(
        load_sample_book(today=SAMPLE_BOOK_AS_OF)[:40], load_sample_book(today=later)[:40], strict=True
    ):
        if original["account_id"] in BAD_RECORDS:
            continue
        assert (
            signals_from_record(shifted, now=now, tz=UTC_ZONE).days_to_renewal
            == signals_from_record(original, now=AS_OF_MORNING, tz=UTC_ZONE).days_to_renewal
        )


def test_large_books_keep_unique_names() -> None:
    accounts = generate_accounts(900, seed=3, as_of=SAMPLE_BOOK_AS_OF)
    assert len({account["name"] for account in accounts}) == 900
