"""The desk's book tables on SQLite and PostgreSQL: incremental refresh, deltas, movement, account changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from src.app.analysis.health import SIGNAL_MAX_POINTS
from src.app.schemas import CSMHealthScore
from src.app.tools.store.sql import SQLStore
from src.app.tools.store.sql_book import BookFilter, BookStore

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
    assert await book.refresh() == 4
    await sql_store.save_scores([score("a1", 30, 0), score("a2", 60, 0), score("a3", 85, 0), score("a4", 80, 0)])
    assert await book.refresh() == 4 and await book.refresh() == 0
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
