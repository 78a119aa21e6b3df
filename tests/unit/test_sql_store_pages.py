"""`SQLStore` paging: keyset pages and id ranges of raw records, active filter, bad page size (SQLite, PostgreSQL)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from src.app.analysis.signals import DETAIL_FIELDS
from src.app.tools.store import AccountPages, AccountRanges
from src.app.tools.store.sql import SQLStore


@pytest.fixture(params=["sqlite-file", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SQLStore]:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    sql_store = SQLStore(str(request.getfixturevalue("postgres_url")) if request.param == "postgresql" else url)
    yield sql_store
    await sql_store.aclose()


async def test_pages_cover_every_active_account_once_in_id_order(store: SQLStore) -> None:
    ids = [f"acct-{n:03d}" for n in (7, 1, 3, 10, 5)]
    await store.upsert_accounts([{"account_id": i, "name": i, "status": "active"} for i in ids])
    await store.upsert_accounts([{"account_id": "acct-004", "name": "x", "status": "churned"}])
    pages = [[r["account_id"] for r in page] async for page in store.iter_accounts(page_size=2)]
    assert pages == [["acct-001", "acct-003"], ["acct-005", "acct-007"], ["acct-010"]]
    everything = [r["account_id"] async for page in store.iter_accounts(active_only=False, page_size=3) for r in page]
    assert everything == sorted([*ids, "acct-004"])


async def test_exact_multiple_of_page_size_and_empty_store(store: SQLStore) -> None:
    assert [page async for page in store.iter_accounts(page_size=2)] == []
    await store.upsert_accounts([{"account_id": i, "name": i} for i in ("a", "b", "c", "d")])
    assert [len(page) async for page in store.iter_accounts(page_size=2)] == [2, 2]


async def test_bad_page_size_is_named(store: SQLStore) -> None:
    with pytest.raises(ValueError, match="page_size must be at least 1, got 0"):
        [page async for page in store.iter_accounts(page_size=0)]


def test_sql_store_has_the_paging_capability(store: SQLStore) -> None:
    assert isinstance(store, AccountPages)


async def test_page_bounds_split_the_active_accounts_into_ranges(store: SQLStore) -> None:
    assert await store.page_bounds(page_size=2) == [(None, None)]
    ids = [f"acct-{n:03d}" for n in (7, 1, 3, 10, 5)]
    await store.upsert_accounts([{"account_id": i, "name": i, "status": "active"} for i in ids])
    await store.upsert_accounts([{"account_id": "acct-004", "name": "x", "status": "churned"}])
    bounds = await store.page_bounds(page_size=2)
    assert bounds == [(None, "acct-003"), ("acct-003", "acct-007"), ("acct-007", None)]
    pages = [[r["account_id"] for r in await store.accounts_in_range(*b)] for b in bounds]
    assert pages == [["acct-001", "acct-003"], ["acct-005", "acct-007"], ["acct-010"]]
    with pytest.raises(ValueError, match="page_size must be at least 1, got 0"):
        await store.page_bounds(page_size=0)


async def test_a_book_of_whole_pages_has_no_empty_last_page(store: SQLStore) -> None:
    await store.upsert_accounts([{"account_id": i, "name": i, "status": "active"} for i in ("a", "b", "c", "d")])
    assert await store.page_bounds(page_size=2) == [(None, "b"), ("b", None)]
    assert await store.page_bounds(page_size=4) == [(None, None)]
    assert await store.page_bounds(page_size=1) == [(None, "a"), ("a", "b"), ("b", "c"), ("c", None)]
    await store.upsert_accounts([{"account_id": "e", "name": "e", "status": "active"}])  # added after a split
    assert [r["account_id"] for r in await store.accounts_in_range("b", None)] == ["c", "d", "e"]


async def test_a_range_read_leaves_out_the_omitted_keys_and_takes_the_ranges_later_accounts(store: SQLStore) -> None:
    await store.upsert_accounts([{"account_id": i, "name": i, "tickets": [1]} for i in ("a", "c")])
    bounds = await store.page_bounds(page_size=1)
    await store.upsert_accounts([{"account_id": "b", "name": "b", "tickets": [2]}])  # added after the split
    pages = [await store.accounts_in_range(*b, omit=("tickets",)) for b in bounds]
    assert [[r["account_id"] for r in page] for page in pages] == [["a"], ["b", "c"]]
    assert all("tickets" not in record for page in pages for record in page)


def test_only_a_database_other_processes_can_open_has_a_process_url(store: SQLStore) -> None:
    assert isinstance(store, AccountRanges) and store.process_url() == str(store._url)
    assert SQLStore("sqlite://").process_url() is None
    assert SQLStore("postgresql+psycopg://u:pw@db/csm").process_url() == "postgresql+psycopg://u:pw@db/csm"


async def test_a_database_from_before_the_scan_record_column_gets_it_and_reads_as_before(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    old = SQLStore(url)
    await old.upsert_accounts([{"account_id": "a", "name": "A", "tickets": [1], "nps_score": 9}])
    await old.aclose()
    with sqlite3.connect(tmp_path / "old.sqlite") as connection:  # the table as an earlier version created it
        connection.execute("ALTER TABLE accounts DROP COLUMN scan_record")
    store = SQLStore(url)
    try:
        assert await store.accounts_in_range(None, None, omit=DETAIL_FIELDS) == [
            {"account_id": "a", "name": "A", "nps_score": 9}
        ]
        await store.upsert_accounts([{"account_id": "b", "name": "B", "tickets": [2], "nps_score": 3}])
        page = await store.accounts_in_range("a", None, omit=DETAIL_FIELDS)
        assert page == [{"account_id": "b", "name": "B", "nps_score": 3}]
        assert [r["tickets"] for r in await store.load_accounts()] == [[1], [2]]
    finally:
        await store.aclose()
