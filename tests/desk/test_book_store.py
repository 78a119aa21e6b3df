"""The desk's book tables on SQLite and PostgreSQL: incremental refresh, deltas, movement, account changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic_core import from_json
from sqlalchemy import delete, select

from src.app.analysis.health import SIGNAL_MAX_POINTS, weakest_signals
from src.app.schemas import CSMHealthScore
from src.app.tools.store.sql import SQLStore
from src.app.tools.store.sql_book import RAGS, BookFilter, BookStore
from src.app.tools.store.sql_book_rows import (
    _stored_health,
    _top_of,
    health_rows,
    top_signals,
    top_signals_json,
    upsert_health,
)
from src.app.tools.store.sql_tables import ACCOUNT_HEALTH, BOOK_DAYS, DESK_MARKS, JSONText

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def score(account_id: str, value: float, days_ago: int) -> CSMHealthScore:
    rag = "GREEN" if value >= 70 else "AMBER" if value >= 40 else "RED"
    return CSMHealthScore(
        account_id=account_id,
        score=value,
        rag=rag,
        churn_risk_level="low",
        signal_breakdown={"usage_trend": 3.0},
        computed_at=NOW - timedelta(days=days_ago),
    )


@pytest.fixture(params=["sqlite", "postgresql"])
async def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> SQLStore:
    url = (
        f"sqlite:///{tmp_path / 'book.sqlite'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    return SQLStore(url)


async def test_the_book_is_kept_incrementally_from_scores_and_account_updates(sql_store: SQLStore) -> None:
    accounts = [
        {
            "account_id": f"a{i}",
            "name": f"Acct {i}",
            "arr": 1000.0 * i,
            "rep_email": "r@x.com" if i % 2 else "s@x.com",
            "segment": "smb",
            "contract_end_date": (NOW + timedelta(days=20 * i)).date().isoformat(),
        }
        for i in range(1, 5)
    ]
    await sql_store.upsert_accounts(accounts)
    await sql_store.save_scores([score(a["account_id"], 80, 10) for a in accounts])
    book = BookStore(sql_store, max_points=dict(SIGNAL_MAX_POINTS))
    await sql_store.save_scores([score("a1", 30, 0), score("a2", 60, 0), score("a3", 85, 0), score("a4", 80, 0)])
    assert await book.refresh() == 0  # the store's score writes kept the book: the desk reads nothing back
    today = NOW.date()
    counts = await book.counts(BookFilter(), today=today)
    assert {rag: c["accounts"] for rag, c in counts.items()} == {"RED": 1, "AMBER": 1, "GREEN": 2}
    assert counts["RED"]["arr"] == 1000.0
    riskiest = await book.rows(BookFilter(), today=today)
    assert [r.account_id for r in riskiest] == ["a1", "a2", "a4", "a3"] and riskiest[0].delta == -50
    assert [r.account_id for r in await book.rows(BookFilter(), today=today, order="up")] == ["a3"]
    assert [r.account_id for r in await book.rows(BookFilter(owner="r@x.com"), today=today)] == ["a1", "a3"]
    assert [r.account_id for r in await book.rows(BookFilter(renewal_within_days=30), today=today)] == ["a1"]
    moved = await book.movement(today=today, windows=(7, 30))
    assert moved[7] == {"RED": 1, "AMBER": 1, "GREEN": -2} and moved[30] is None
    await sql_store.upsert_accounts([{**accounts[0], "rep_email": "new@x.com", "name": "Renamed"}])
    await book.refresh()
    [row] = await book.rows(BookFilter(owner="new@x.com"), today=today)
    assert row.name == "Renamed"
    await sql_store.aclose()


def _forget_the_book(store: SQLStore) -> None:
    """Leave the store as a version that did not keep the book wrote it: scores, but empty book tables."""
    with store._transaction(write=True) as connection:
        for table in (ACCOUNT_HEALTH, BOOK_DAYS, DESK_MARKS):
            connection.execute(delete(table))


async def test_the_desk_catches_up_a_store_written_by_an_older_version(sql_store: SQLStore) -> None:
    await sql_store.upsert_accounts([{"account_id": f"a{i}", "name": f"Acct {i}"} for i in range(3)])
    await sql_store.save_scores([score(f"a{i}", 80, 10) for i in range(3)])
    _forget_the_book(sql_store)
    await sql_store.save_scores([score("a0", 30, 1)])  # older rows were never applied: left to the catch-up
    book = BookStore(sql_store, max_points=dict(SIGNAL_MAX_POINTS))
    today = NOW.date()
    assert await book.counts(BookFilter(), today=today) == {rag: {"accounts": 0, "arr": 0.0} for rag in RAGS}
    assert await book.refresh() == 4 and await book.refresh() == 0
    await sql_store.save_scores([score("a1", 50, 0)])  # caught up: the store keeps the book again
    assert await book.refresh() == 0
    rows = {r.account_id: (r.score, r.delta, r.name) for r in await book.rows(BookFilter(), today=today)}
    assert rows == {"a0": (30, -50, "Acct 0"), "a1": (50, -30, "Acct 1"), "a2": (80, None, "Acct 2")}
    assert (await book.movement(today=today, windows=(1,)))[1] == {"RED": 0, "AMBER": 1, "GREEN": -1}
    await sql_store.aclose()


async def test_scores_of_several_days_at_once_are_left_to_the_catch_up(sql_store: SQLStore) -> None:
    await sql_store.upsert_accounts([{"account_id": "a", "name": "A"}])
    await sql_store.save_scores([score("a", 80, 3), score("a", 40, 1)])  # history written at once
    await sql_store.save_scores([score("a", 20, 0)])  # waits behind the unapplied history
    book = BookStore(sql_store, max_points=dict(SIGNAL_MAX_POINTS))
    assert await book.refresh() == 3
    [row] = await book.rows(BookFilter(), today=NOW.date())
    assert (row.score, row.delta) == (20, -20)
    moved = await book.movement(today=NOW.date(), windows=(1, 2))  # each day snapshotted (3 and 1 days ago, today)
    assert moved == {1: {"RED": 1, "AMBER": -1, "GREEN": 0}, 2: {"RED": 1, "AMBER": 0, "GREEN": -1}}
    await sql_store.aclose()


async def test_an_account_changed_after_the_scan_shows_its_new_fields_on_the_first_view(sql_store: SQLStore) -> None:
    await sql_store.upsert_accounts([{"account_id": "a", "name": "Old name", "rep_email": "r@x.com"}])
    await sql_store.save_scores([score("a", 80, 0)])
    await sql_store.upsert_accounts([{"account_id": "a", "name": "New name", "rep_email": "s@x.com"}])
    book = BookStore(sql_store, max_points=dict(SIGNAL_MAX_POINTS))
    assert await book.refresh() == 0
    [row] = await book.rows(BookFilter(), today=NOW.date())
    assert (row.name, row.rep_email) == ("New name", "s@x.com")
    await sql_store.aclose()


@given(
    st.fixed_dictionaries(
        {
            key: st.one_of(st.just(best), st.integers(0, int(best * 100)).map(lambda cents: cents / 100))
            for key, best in SIGNAL_MAX_POINTS.items()
        }
    )
)
@example(  # 5 - 4.34 and 2 - 1.34 differ in float noise only: an equal loss, so the names decide
    {**SIGNAL_MAX_POINTS, "stakeholder_engagement": 4.34, "escalation_count_90_days": 1.34}
)
def test_the_book_names_the_signals_that_cost_the_most_as_the_scorer_does(breakdown: dict[str, float]) -> None:
    [row] = health_rows(["a"], [50], ["AMBER"], ["low"], [breakdown], [NOW])
    expected = weakest_signals(score("a", 50, 0).model_copy(update={"signal_breakdown": breakdown}))
    assert from_json(row["top_signals"]) == [[name, round(best - points, 2)] for name, points, best in expected]


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(sorted(SIGNAL_MAX_POINTS)), st.integers(0, 2000).map(lambda cents: cents / 100)
        ),
        min_size=1,
        max_size=8,
    )
)
def test_a_page_of_breakdowns_gets_the_top_signals_each_gets_alone(breakdowns: list[dict[str, float]]) -> None:
    together = top_signals(breakdowns, SIGNAL_MAX_POINTS)
    without_numpy = [_top_of(breakdown, sorted(SIGNAL_MAX_POINTS), SIGNAL_MAX_POINTS) for breakdown in breakdowns]
    assert without_numpy == together
    alone = [top_signals([breakdown], SIGNAL_MAX_POINTS)[0] for breakdown in breakdowns]
    by_hand = [
        [[name, -cent / 100] for cent, name in sorted(lost)[:3] if cent < 0]
        for lost in (
            [(int((b.get(name, 0.0) - best) * 100 - 0.5), name) for name, best in SIGNAL_MAX_POINTS.items()]
            for b in breakdowns
        )
    ]
    assert together == alone == by_hand
    assert [from_json(text) for text in top_signals_json(breakdowns, SIGNAL_MAX_POINTS)] == together


async def test_each_snapshot_holds_the_books_rag_counts_as_a_full_count_gives_them(sql_store: SQLStore) -> None:
    await sql_store.upsert_accounts([{"account_id": f"a{i}", "name": f"Acct {i}"} for i in range(12)])
    pages = [
        [score(f"a{i}", 80, 3) for i in range(6)],  # a first page: no snapshot yet
        [score(f"a{i}", 30 + 6 * i, 3) for i in range(4, 12)],  # half known, half new
        [score(f"a{i}", 95 - 8 * i, 2) for i in range(0, 12, 2)],  # a new day, RAGs moving both ways
        [score("a1", 20, 5)],  # computed before the book's score: the book keeps the newer one
        [score(f"a{i}", 45, 0) for i in range(12)],
    ]
    for page in pages:
        await sql_store.save_scores(page)
        with sql_store._transaction(write=False) as connection:
            [(counts,)] = connection.execute(
                BOOK_DAYS.select().with_only_columns(BOOK_DAYS.c.counts).order_by(BOOK_DAYS.c.last_score_id.desc())
            ).all()[:1]
            rags = list(connection.execute(ACCOUNT_HEALTH.select().with_only_columns(ACCOUNT_HEALTH.c.rag)).scalars())
        assert counts == {rag: rags.count(rag) for rag in sorted(set(rags))}
    await sql_store.aclose()


async def test_an_upsert_that_leaves_unmoved_columns_out_leaves_the_book_as_the_full_upsert_does(
    sql_store: SQLStore,
) -> None:
    values = (None, 0.0, -0.0, 40.0, 55.5)
    stored = [
        {"account_id": f"a{i:03d}", "score": score_value, "rag": rag, "previous_score": previous, "delta": delta}
        for i, (score_value, rag, previous, delta) in enumerate(
            (s, r, p, d) for s in values[1:] for r in ("RED", "AMBER") for p in values for d in values
        )
    ]
    new_scores = (0.0, -0.0, 40.0, 70.25)
    rows = [
        {
            "account_id": row["account_id"],
            "score": new_scores[i % len(new_scores)],
            "rag": ("RED", "GREEN")[i // 7 % 2],
            "previous_score": None,
            "delta": None,
            "churn_risk_level": "low",
            "top_signals": JSONText("[]"),
            "computed_at": NOW - timedelta(hours=1) if i % 5 == 0 else NOW,  # some are older than the book's
        }
        for i, row in enumerate(stored)
    ]
    book: dict[bool, list[tuple[object, ...]]] = {}
    for leave_out in (False, True):
        with sql_store._transaction(write=True) as connection:
            connection.execute(delete(ACCOUNT_HEALTH))
            connection.execute(
                ACCOUNT_HEALTH.insert(),
                [
                    {**row, "churn_risk_level": "low", "top_signals": [], "computed_at": NOW - timedelta(minutes=30)}
                    for row in stored
                ],
            )
            before = _stored_health(connection, [row["account_id"] for row in rows])
            upsert_health(connection, rows, stored=before if leave_out else None)
            columns = ACCOUNT_HEALTH.c
            query = select(
                columns.account_id,
                columns.score,
                columns.rag,
                columns.previous_score,
                columns.delta,
                columns.computed_at,
            ).order_by(columns.account_id)
            book[leave_out] = [
                tuple(f"{v!r}" if isinstance(v, float) else v for v in row) for row in connection.execute(query)
            ]
    assert book[True] == book[False]
    await sql_store.aclose()
