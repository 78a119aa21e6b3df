"""A large whole-book scan splits its pages between this process and real helper processes, losing nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from src.app.analysis.health import CSMHealthScorer
from src.app.context import CSMContext
from src.app.graph.customer_success import build_customer_success_graph
from src.app.scan import book as whole_book
from src.app.scan.helper import ScanHelper, ScanHelperError
from src.app.scan.page import PageResult, ScanSpec
from src.app.tools.store import PageBounds
from src.app.tools.store.sql import SQLStore
from tests.conftest import NOW
from tests.support.fakes import AT_RISK, HEALTHY, make_account

graph = build_customer_success_graph()
ACCOUNTS = 24


@pytest.fixture(autouse=True)
def many_small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(whole_book, "SCAN_PAGE_SIZE", 3)
    monkeypatch.setattr(whole_book, "HELPER_MIN_PAGES", 2)


def book() -> list[dict[str, Any]]:
    records = [make_account(f"acct-{n:03d}", AT_RISK if n % 4 == 0 else HEALTHY) for n in range(ACCOUNTS)]
    records[5]["nps_score"] = 42  # a bad record: reported, never saved, never stops the scan
    return records


def with_processes(ctx: CSMContext, processes: int) -> CSMContext:
    return replace(ctx, settings=ctx.settings.model_copy(update={"scan_processes": processes}))


async def scan(ctx: CSMContext) -> dict[str, Any]:
    out = await graph.ainvoke({"task": {"type": "health_scan"}}, context=ctx)
    return dict(out["result"])


def count_helper_pages(
    monkeypatch: pytest.MonkeyPatch, *, kill_on_send: int | None = None, failed: list[str] | None = None
) -> list[PageResult]:
    """Record the pages real helpers scored; optionally kill the helper's process as page N is sent to it."""
    scored: list[PageResult] = []
    sends = 0
    real_submit: Callable[[ScanHelper, PageBounds], Awaitable[None]] = ScanHelper.submit
    real_collect: Callable[[ScanHelper], Awaitable[PageResult]] = ScanHelper.collect

    async def submit(helper: ScanHelper, bounds: PageBounds) -> None:
        nonlocal sends
        sends += 1
        if sends == kill_on_send:
            helper._process.kill()
        try:
            await real_submit(helper, bounds)
        except ScanHelperError as error:
            (failed if failed is not None else []).append(str(error))
            raise

    async def collect(helper: ScanHelper) -> PageResult:
        try:
            result = await real_collect(helper)
        except ScanHelperError as error:
            (failed if failed is not None else []).append(str(error))
            raise
        scored.append(result)
        return result

    monkeypatch.setattr(ScanHelper, "submit", submit)
    monkeypatch.setattr(ScanHelper, "collect", collect)
    return scored


async def history(store: SQLStore) -> list[tuple[Any, ...]]:
    scores = await store.latest_scores()
    return sorted(
        (s.account_id, s.score, s.rag, s.churn_risk_level, sorted(s.signal_breakdown.items())) for s in scores.values()
    )


async def serial_twin(ctx: CSMContext, tmp_path: Path) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """The same scan of the same book in another store, in this process only."""
    store = SQLStore(f"sqlite:///{tmp_path / 'serial.sqlite'}")
    try:
        await store.upsert_accounts(book())
        result = await scan(replace(with_processes(ctx, 1), store=store))
        return result, await history(store)
    finally:
        await store.aclose()


async def test_helpers_score_part_of_the_book_with_the_same_outcome_as_one_process(
    ctx: CSMContext, store: SQLStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.upsert_accounts(book())
    expected, expected_history = await serial_twin(ctx, tmp_path)
    helped = count_helper_pages(monkeypatch)
    result = await scan(with_processes(ctx, 3))
    assert helped, "no page was scored by a helper process"
    assert len(helped) < ACCOUNTS // 3  # this process scored pages too
    assert await history(store) == expected_history
    assert await store.count("health_scores") == ACCOUNTS - 1
    for key in ("scanned_count", "scored_count", "rag_counts", "alerts_dispatched", "errors", "health_scores"):
        assert result[key] == expected[key], key
    assert [e["account_id"] for e in result["errors"]] == ["acct-005"]


async def test_a_helper_killed_mid_scan_hands_its_page_back(
    ctx: CSMContext, store: SQLStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.upsert_accounts(book())
    expected, expected_history = await serial_twin(ctx, tmp_path)
    failed: list[str] = []
    helped = count_helper_pages(monkeypatch, kill_on_send=1, failed=failed)
    result = await scan(with_processes(ctx, 2))
    assert helped == [] and len(failed) == 1 and "scan helper exited" in failed[0]
    assert await history(store) == expected_history
    assert result["scored_count"] == expected["scored_count"] == ACCOUNTS - 1
    assert result["alerts_dispatched"] == expected["alerts_dispatched"]


async def test_one_process_or_an_in_memory_store_starts_no_helper(
    ctx: CSMContext, store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.upsert_accounts(book())
    helped = count_helper_pages(monkeypatch)
    assert (await scan(with_processes(ctx, 1)))["scored_count"] == ACCOUNTS - 1
    memory = SQLStore("sqlite://")
    await memory.upsert_accounts(book())
    assert (await scan(replace(with_processes(ctx, 4), store=memory)))["scored_count"] == ACCOUNTS - 1
    await memory.aclose()
    assert helped == []


async def test_a_helper_scores_saves_and_reports_one_page_then_exits_at_the_end_of_its_input(
    store: SQLStore, tmp_path: Path
) -> None:
    await store.upsert_accounts(book())
    url = store.process_url()
    assert url is not None
    spec = ScanSpec(scorer=CSMHealthScorer(), now=NOW, tz=ZoneInfo("UTC"), keep_scores=False)
    helper = await ScanHelper.start(url, spec, ("tickets",))
    try:
        page = await helper.score(("acct-003", "acct-008"))
        assert page.scanned == 5 and page.scores == []
        assert [c[2] for c in page.candidates] == ["acct-004", "acct-008"]
        assert [e["account_id"] for e in page.errors] == ["acct-005"]
        assert await store.count("health_scores") == 4
        with pytest.raises(ScanHelperError, match="scan helper failed on a page"):
            await helper.score(("acct-003",))  # type: ignore[arg-type]
        assert (await helper.score((None, "acct-000"))).scanned == 1  # still serving after a failed page
    finally:
        await helper.close()
    assert helper._process.returncode == 0
