"""Property tests: any mix of malformed account records never stops a scan, and each bad one is named."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from src.app.analysis.health import CSMHealthScorer
from src.app.analysis.scan import score_book
from src.app.analysis.signals import REQUIRED_SIGNALS
from src.app.context import CSMContext
from src.app.graph.customer_success import build_customer_success_graph
from tests.conftest import NOW
from tests.hardening.conftest import fresh_store, offline_settings
from tests.support.fakes import (
    AT_RISK,
    HEALTHY,
    Fakes,
    RecordingChat,
    RecordingEvents,
    RecordingMail,
    ScriptedLLM,
    make_account,
)

graph = build_customer_success_graph()
MODEST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ENUMS = {
    "usage_trend": {"growing", "stable", "declining", "inactive"},
    "stakeholder_engagement": {"high", "medium", "low"},
    "invoice_payment_status": {"current", "overdue_30", "overdue_60", "overdue_90_plus"},
    "avg_ticket_sentiment": {"positive", "neutral", "negative", "critical"},
    "tam_health_rag": {"GREEN", "AMBER", "RED"},
    "collections_risk": {"GREEN", "AMBER", "RED", "CRITICAL"},
}
FRACTIONS = {"feature_adoption_rate": 1.0, "seats_utilization_rate": 2.0}
COUNTS = ("login_frequency_days", "days_since_last_interaction", "open_ticket_count", "escalation_count_90_days")


@dataclass(frozen=True)
class Corruption:
    """One bad field: its name, the bad value (None: removed) and whether it is an identity field."""

    field: str
    value: Any
    identity: bool = False


def _finite(low: float | None = None, high: float | None = None) -> st.SearchStrategy[float]:
    return st.floats(
        min_value=low, max_value=high, allow_nan=False, exclude_min=low is not None, exclude_max=high is not None
    )


WRONG_TYPE = st.lists(st.integers(), max_size=3) | st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)
HUGE_TEXT = st.integers(min_value=1_000, max_value=200_000).map(lambda n: "Z" * n)


def _unknown_enum(field: str) -> st.SearchStrategy[str]:
    return (st.text(max_size=40) | HUGE_TEXT).filter(lambda text: text not in ENUMS[field])


SIGNAL_CORRUPTIONS = st.one_of(
    st.sampled_from(sorted(FRACTIONS)).flatmap(
        lambda f: st.builds(
            Corruption,
            st.just(f),
            _finite(low=FRACTIONS[f]) | _finite(high=0) | st.just(math.nan) | st.just(65) | WRONG_TYPE,
        )
    ),
    st.sampled_from(COUNTS).flatmap(lambda f: st.builds(Corruption, st.just(f), st.integers(max_value=-1))),
    st.builds(Corruption, st.just("nps_score"), st.integers(min_value=11) | st.integers(max_value=-1)),
    st.sampled_from(sorted(ENUMS)).flatmap(lambda f: st.builds(Corruption, st.just(f), _unknown_enum(f))),
    st.sampled_from(REQUIRED_SIGNALS).map(lambda f: Corruption(f, None)),
    st.builds(Corruption, st.just("contract_end_date"), st.sampled_from(["soon", "2026-13-45", "31/12/2026"])),
)
IDENTITY_CORRUPTIONS = st.one_of(
    st.builds(Corruption, st.just("name"), st.just("") | st.just("N" * 501), st.just(True)),
    st.builds(Corruption, st.just("arr"), _finite(high=0), st.just(True)),
    st.builds(Corruption, st.just("seats_purchased"), st.integers(max_value=-1), st.just(True)),
)


@st.composite
def books(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, list[Corruption]]]:
    """A book of good records (some renewing in the past) and bad ones, each with its corruptions."""
    records, corrupted = [], {}
    for index in range(draw(st.integers(min_value=1, max_value=8))):
        account_id = f"acct-{index:02d}"
        signals = draw(st.sampled_from([HEALTHY, AT_RISK]))
        record = make_account(account_id, signals, renews_in_days=draw(st.integers(-400, 400)))
        corruptions = draw(st.lists(SIGNAL_CORRUPTIONS | IDENTITY_CORRUPTIONS, max_size=3, unique_by=lambda c: c.field))
        for corruption in corruptions:
            if corruption.value is None:
                record.pop(corruption.field, None)
            else:
                record[corruption.field] = corruption.value
        bad = [c for c in corruptions if c.value is not None]  # a missing signal lowers coverage, it is no error
        if bad:
            corrupted[account_id] = bad
        records.append(record)
    return records, corrupted


def _quoted(value: Any) -> str:
    """The start of the value as error messages quote it."""
    return repr(value)[:40]


def _assert_names_each_problem(message: str, corruptions: list[Corruption]) -> None:
    signal_problems = [c for c in corruptions if not c.identity]
    expected = signal_problems or corruptions  # identity fields are checked once the signals are valid
    for corruption in expected:
        assert corruption.field in message, (corruption, message)
        if corruption.value is not None:
            assert _quoted(corruption.value) in message, (corruption, message)


@MODEST
@given(book=books())
async def test_a_scan_over_any_book_scores_the_good_and_names_every_bad_record(
    book: tuple[list[dict[str, Any]], dict[str, list[Corruption]]],
) -> None:
    records, corrupted = book
    async with fresh_store() as (store, folder):
        mail, chat = RecordingMail(), RecordingChat()
        ctx = CSMContext(
            settings=offline_settings(folder / "data"),
            store=store,
            llm=ScriptedLLM(),
            mail=mail,
            chat=chat,
            events=RecordingEvents(),
            scorer=CSMHealthScorer(),
            clock=lambda: NOW,
        )
        await store.upsert_accounts(records)
        result = (await graph.ainvoke({"task": {"type": "health_scan"}}, context=ctx))["result"]

        errors = {error["account_id"]: error["message"] for error in result["errors"]}
        assert set(errors) == set(corrupted)
        for account_id, corruptions in corrupted.items():
            _assert_names_each_problem(errors[account_id], corruptions)
        # A bad identity field that is not essential (arr, seats) is reported and the account still scored.
        unscorable = {a for a, cs in corrupted.items() if any(not c.identity or c.field == "name" for c in cs)}
        good = {r["account_id"] for r in records} - unscorable
        assert {s["account_id"] for s in result["health_scores"]} == good
        for score in result["health_scores"]:  # required signals removed: scored, with them named as missing
            record = next(r for r in records if r["account_id"] == score["account_id"])
            removed = [name for name in REQUIRED_SIGNALS if name not in record]
            assert set(removed) <= set(score["missing_signals"])
            assert score["coverage"] < 1 or not removed
        assert set(await store.latest_scores()) == good
        drafted_for = {account_id for _, account_id, _ in mail.drafts.values()}
        assert drafted_for <= good and {m.thread_key for m in chat.messages.values()} <= good
        assert result["confidence"] == ("medium" if unscorable else "high")


@MODEST
@given(
    junk=st.lists(
        st.none() | st.integers() | st.text(max_size=20) | st.dictionaries(st.text(max_size=8), st.integers()),
        max_size=5,
    ),
    good_count=st.integers(0, 3),
)
def test_score_book_survives_records_that_are_not_even_mappings(junk: list[Any], good_count: int) -> None:
    good = [make_account(f"good-{i}", HEALTHY) for i in range(good_count)]
    outcome = score_book(
        [*junk, *good], scorer=CSMHealthScorer(), previous={}, now=NOW.astimezone(UTC), tz=ZoneInfo("UTC")
    )
    assert [s.account_id for s in outcome.scores] == [r["account_id"] for r in good]
    assert len(outcome.errors) == len(junk)
    assert all("account_id" in error.message for error in outcome.errors)


async def test_absurd_adoption_and_negative_seats_are_named_with_their_values(ctx: CSMContext) -> None:
    await ctx.store.upsert_accounts(
        [
            make_account("pct", {**HEALTHY, "feature_adoption_rate": 65}),
            make_account("seats", HEALTHY, seats_purchased=-3),
            make_account("past", HEALTHY, renews_in_days=-30),
        ]
    )
    result = (await graph.ainvoke({"task": {"type": "health_scan"}}, context=ctx))["result"]
    errors = {error["account_id"]: error["message"] for error in result["errors"]}
    assert "feature_adoption_rate=65 is out of range (must be 0..1)" in errors["pct"]
    assert "seats_purchased=-3 is out of range" in errors["seats"]
    scored = {score["account_id"]: score for score in result["health_scores"]}
    assert set(scored) == {"seats", "past"}  # negative seats is reported, but it is not a signal: still scored
    assert scored["past"]["signal_breakdown"]["days_to_renewal"] == 1


async def test_a_rescan_on_the_same_day_adds_no_second_history_row(fakes: Fakes, ctx: CSMContext) -> None:
    await ctx.store.upsert_accounts([make_account("a", HEALTHY), make_account("b", AT_RISK)])
    first = (await graph.ainvoke({"task": {"type": "health_scan"}}, context=ctx))["result"]
    later = replace(ctx, clock=lambda: NOW.replace(hour=NOW.hour + 2))
    second = (await graph.ainvoke({"task": {"type": "health_scan"}}, context=later))["result"]
    assert second["health_scores"] == first["health_scores"]
    assert await fakes.store.count("health_scores") == 2
    changed = make_account("a", {**HEALTHY, "usage_trend": "stable"})
    await ctx.store.upsert_accounts([changed])
    await graph.ainvoke({"task": {"type": "health_scan"}}, context=later)
    assert await fakes.store.count("health_scores") == 3
