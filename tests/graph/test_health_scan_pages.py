"""A whole-book scan works page by page: every account scored and saved, summary results, stable order."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from src.app.context import CSMContext
from src.app.graph.customer_success import build_customer_success_graph
from src.app.scan import book as whole_book
from src.app.tools.store.sql import SQLStore
from tests.conftest import NOW
from tests.support.fakes import AT_RISK, HEALTHY, make_account

graph = build_customer_success_graph()
IDS = ["a-1", "a-2", "a-3", "b-1", "b-2"]
RISKY = {"a-2", "b-2"}


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(whole_book, "SCAN_PAGE_SIZE", 2)


async def scan(ctx: CSMContext, **task: Any) -> dict[str, Any]:
    out = await graph.ainvoke({"task": {"type": "health_scan", **task}}, context=ctx)
    return out["result"]


async def load_book(ctx: CSMContext) -> None:
    records = [make_account(i, AT_RISK if i in RISKY else HEALTHY) for i in reversed(IDS)]
    records.append(make_account("z-gone", AT_RISK, status="churned"))
    await ctx.store.upsert_accounts(records)


async def test_full_scan_across_pages_returns_every_score_in_id_order(ctx: CSMContext) -> None:
    await load_book(ctx)
    result = await scan(ctx)
    assert [s["account_id"] for s in result["health_scores"]] == IDS
    assert result["scanned_count"] == 5 and result["scored_count"] == 5 and result["scores_included"] == "all"
    assert result["rag_counts"] == {"GREEN": 3, "AMBER": 0, "RED": 2}
    assert await ctx.store.count("health_scores") == 5
    assert result["alerts_dispatched"] == 2


async def test_summary_scan_returns_only_the_alerted_scores_but_saves_all(ctx: CSMContext) -> None:
    await load_book(ctx)
    ctx = replace(ctx, settings=ctx.settings.model_copy(update={"max_alerts_per_scan": 1}))
    result = await scan(ctx, summary=True)
    assert result["alerts_dispatched"] == 1 and len(result["health_scores"]) == 1
    assert result["health_scores"][0]["account_id"] in RISKY and result["health_scores"][0]["should_alert"]
    assert result["scored_count"] == 5 and result["scores_included"] == "alerted"
    assert result["rag_counts"]["GREEN"] == 3 and result["health_score"] is None
    assert set((await ctx.store.latest_scores()).keys()) == set(IDS)


async def test_deltas_use_yesterdays_score_on_every_page(ctx: CSMContext, store: SQLStore) -> None:
    await load_book(ctx)
    yesterday = await scan(ctx)
    improved = make_account("b-2", HEALTHY)
    await store.upsert_accounts([improved])
    today = await scan(_a_day_later(ctx))
    by_id = {s["account_id"]: s for s in today["health_scores"]}
    before = {s["account_id"]: s["score"] for s in yesterday["health_scores"]}
    assert by_id["b-2"]["previous_score"] == before["b-2"] and by_id["b-2"]["signal_deltas"]
    assert by_id["a-1"]["previous_score"] == before["a-1"] and by_id["a-1"]["signal_deltas"] == {}
    assert await store.count("health_scores") == 10


async def test_missing_ids_are_reported_with_paged_loading(ctx: CSMContext) -> None:
    await load_book(ctx)
    result = await scan(ctx, account_ids=["a-1", "nope", "b-1"])
    assert [s["account_id"] for s in result["health_scores"]] == ["a-1", "b-1"]
    assert [e["account_id"] for e in result["errors"]] == ["nope"]


def _a_day_later(ctx: CSMContext) -> CSMContext:
    return replace(ctx, clock=lambda: NOW + timedelta(days=1))


async def test_detail_fields_do_not_block_a_whole_book_scan(ctx: CSMContext) -> None:
    await load_book(ctx)
    await ctx.store.upsert_accounts([make_account("a-1", HEALTHY, tickets="not a list", usage_history={"x": 1})])

    result = await scan(ctx)

    assert "a-1" in {score["account_id"] for score in result["health_scores"]}
    assert result["errors"] == []  # tickets and usage history are checked by the tasks that use them
