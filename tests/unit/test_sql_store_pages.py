"""`SQLStore.iter_accounts`: keyset pages of raw records, active filter, bad page size."""

from __future__ import annotations

import pytest

from src.app.tools.sql_store import SQLStore
from src.app.tools.store import AccountPages


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
