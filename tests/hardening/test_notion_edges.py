"""Notion edge cases: a 200 whose body is not JSON, a pagination cursor that repeats, a truncated relation,
archived pages."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from src.app.tools.store.notion.api import NotionAPI, NotionError, NotionServerError, RetryPolicy
from src.app.tools.store.notion.store import NotionStore
from src.app.tools.store.sql import SQLStore
from tests.support.notion_server import NotionServer, p_relation, p_text, p_title

TOKEN = "secret_edges_token_789"
FAST = RetryPolicy(max_attempts=3, backoff_s=0.01)
SCHEMA = {"Name": "title", "Account ID": "rich_text", "Open Tickets": "relation"}


@pytest.fixture
def server() -> Iterator[NotionServer]:
    with NotionServer(token=TOKEN) as running:
        yield running


@pytest.fixture
async def book(server: NotionServer, tmp_path: Path) -> AsyncIterator[tuple[NotionStore, str]]:
    database_id, source = server.add_database("Accounts", SCHEMA)
    server.add_page(source, {"Name": p_title("Beacon"), "Account ID": p_text("acct-1")})
    api = NotionAPI(token=TOKEN, base_url=server.base_url, requests_per_s=1000, retry=FAST)
    store = NotionStore(api, SQLStore(f"sqlite:///{tmp_path / 'inner.sqlite'}"), accounts_database_id=database_id)
    yield store, source
    await store.aclose()


async def test_a_200_whose_body_is_not_json_is_retried_like_a_5xx(
    server: NotionServer, book: tuple[NotionStore, str]
) -> None:
    store, _ = book
    server.fail(200, "not_json", message="<html>proxy error</html>", method="POST", path_contains="/query")
    records = await store.load_accounts()
    assert [r["account_id"] for r in records] == ["acct-1"]
    queries = [r for r in server.requests if r.path.endswith("/query")]
    assert len(queries) == 2


async def test_a_body_that_is_never_json_fails_with_a_notion_error_not_a_decode_error(server: NotionServer) -> None:
    _, source = server.add_database("Accounts", SCHEMA)
    server.fail(200, "not_json", message="<html>proxy</html>", times=10)
    api = NotionAPI(token=TOKEN, base_url=server.base_url, requests_per_s=1000, retry=FAST)
    try:
        with pytest.raises(NotionServerError, match="not JSON after 3 attempt"):
            await api.retrieve_data_source(source)  # what `csm notion check` calls first
    finally:
        await api.aclose()


async def test_a_repeating_pagination_cursor_stops_with_a_clear_error(
    server: NotionServer, book: tuple[NotionStore, str]
) -> None:
    store, _ = book
    server.loop_cursor = True
    with pytest.raises(NotionError, match="cursor 'loop-cursor' twice"):
        await asyncio.wait_for(store.load_accounts(), timeout=30)


async def test_a_truncated_relation_is_paged_and_counted_in_full(
    server: NotionServer, book: tuple[NotionStore, str]
) -> None:
    store, source = book
    tickets = [str(uuid.uuid4()) for _ in range(60)]
    server.add_page(
        source, {"Name": p_title("Many"), "Account ID": p_text("acct-2"), "Open Tickets": p_relation(tickets)}
    )
    records = {r["account_id"]: r for r in await store.load_accounts()}
    assert records["acct-2"]["open_ticket_count"] == 60  # Notion's page object holds only 25


async def test_archived_and_trashed_pages_are_not_part_of_the_book(
    server: NotionServer, book: tuple[NotionStore, str]
) -> None:
    store, source = book
    archived = server.add_page(source, {"Name": p_title("Old"), "Account ID": p_text("acct-old")})
    server.pages[archived]["is_archived"] = True
    server.pages[archived]["archived"] = True
    assert [r["account_id"] for r in await store.load_accounts()] == ["acct-1"]
