"""A whole-book scan reports accounts done page by page to a listener set around the call."""

from __future__ import annotations

from typing import Any

import pytest

from src.app.context import CSMContext
from src.app.graph.customer_success import build_customer_success_graph
from src.app.scan import book as whole_book
from src.app.scan.progress import page_done, scan_progress
from src.app.tools.store.sql import SQLStore
from tests.support.fakes import AT_RISK, HEALTHY, make_account

graph = build_customer_success_graph()


def book(size: int) -> list[dict[str, Any]]:
    records = [make_account(f"acct-{n:03d}", AT_RISK if n % 4 == 0 else HEALTHY) for n in range(size)]
    records[1]["status"] = "churned"  # not in the scan, not in the count
    return records


async def test_pages_advance_the_listener_to_the_counted_total(
    ctx: CSMContext, store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(whole_book, "SCAN_PAGE_SIZE", 4)
    await store.upsert_accounts(book(10))
    total = await store.count_accounts(active_only=True)
    pages: list[int] = []
    with scan_progress(pages.append):
        out = await graph.ainvoke(
            {"task": {"type": "health_scan", "summary": True}},
            context=ctx,
        )
    assert total == 9 == out["result"]["scanned_count"]
    assert pages == [4, 4, 1]
    assert await store.count_accounts(active_only=False) == 10


def test_no_listener_or_a_broken_one_never_stops_a_scan() -> None:
    page_done(3)  # nobody listens

    def broken(_: int) -> None:
        raise RuntimeError("terminal gone")

    with scan_progress(broken):
        page_done(3)
        page_done(3)
