"""Notion requests: 429 with Retry-After, 5xx retries, fail-fast 4xx messages without the token, the rate limit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from src.app.config import CSMSettings
from src.app.schemas import CSMHealthScore
from src.app.tools.store.notion.api import NotionAPI, NotionError, NotionServerError, RetryPolicy
from src.app.tools.store.notion.blocks import paragraphs
from src.app.tools.store.notion.store import NotionStore
from src.app.tools.store.sql import SQLStore
from tests.support.fakes import HEALTHY, make_account
from tests.support.notion_server import NotionServer, RateLimit, seed_accounts

TOKEN = "secret_api_token_789xyz"
FAST = RetryPolicy(max_attempts=4, backoff_s=0.01)


@pytest.fixture
def server() -> Iterator[NotionServer]:
    with NotionServer(token=TOKEN) as running:
        yield running


@pytest.fixture
async def inner(tmp_path: Path) -> AsyncIterator[SQLStore]:
    store = SQLStore(f"sqlite:///{tmp_path / 'inner.sqlite'}")
    yield store
    await store.aclose()


def make_store(server: NotionServer, inner: SQLStore, database_id: str, *, token: str = TOKEN) -> NotionStore:
    settings = CSMSettings(  # type: ignore[call-arg]
        _env_file=None,
        notion_token=token,
        notion_base_url=server.base_url,
        notion_accounts_database_id=database_id,
        notion_requests_per_s=1000,
    )
    return NotionStore.from_settings(settings, inner, retry=FAST)


def fast_api(server: NotionServer, *, rate: float = 1000) -> NotionAPI:
    return NotionAPI(token=TOKEN, base_url=server.base_url, requests_per_s=rate, retry=FAST)


def statuses(server: NotionServer, pattern: str, method: str = "POST") -> list[int]:
    return [r.status for r in server.requests_to(method, pattern)]


async def test_429_waits_for_retry_after_then_succeeds(server: NotionServer, inner: SQLStore) -> None:
    database_id, _ = seed_accounts(server, [make_account("a-1", HEALTHY)])
    server.fail(429, path_contains="/query", retry_after="1")
    store = make_store(server, inner, database_id)

    [record] = await store.load_accounts()

    assert record["account_id"] == "a-1"
    limited, ok = server.requests_to("POST", r"/query$")
    assert (limited.status, ok.status) == (429, 200)
    assert ok.at - limited.at >= 0.98
    await store.aclose()


async def test_5xx_is_retried_with_backoff(server: NotionServer, inner: SQLStore) -> None:
    database_id, source = seed_accounts(server, [make_account("a-1", HEALTHY)])
    server.fail(503, path_contains="/query")
    server.fail(502, method="GET", path_contains="/databases/")
    store = make_store(server, inner, database_id)

    assert [r["account_id"] for r in await store.load_accounts()] == ["a-1"]

    assert statuses(server, r"/databases/", "GET") == [502, 200]
    assert statuses(server, r"/query$") == [503, 200]
    await store.aclose()


async def test_persistent_5xx_gives_up_after_the_bounded_attempts(server: NotionServer, inner: SQLStore) -> None:
    database_id, _ = seed_accounts(server, [make_account("a-1", HEALTHY)])
    server.fail(500, times=100, path_contains="/query")
    store = make_store(server, inner, database_id)
    with pytest.raises(NotionServerError, match=r"\(500 internal_server_error\) after 4 attempt\(s\)"):
        await store.load_accounts()
    assert len(server.requests_to("POST", r"/query$")) == FAST.max_attempts
    await store.aclose()


async def test_unknown_database_fails_fast_with_a_clear_message(server: NotionServer, inner: SQLStore) -> None:
    missing = str(uuid.uuid4())
    store = make_store(server, inner, missing)
    with pytest.raises(NotionError) as raised:
        await store.load_accounts()
    assert str(raised.value) == (
        f"Notion database {missing} not found or not shared with the integration (404 object_not_found)"
    )
    # One look as a database, one as a data source id; no retries.
    assert [(r.method, r.status) for r in server.requests] == [("GET", 404), ("GET", 404)]
    await store.aclose()


async def test_a_data_source_id_is_accepted_in_place_of_a_database_id(server: NotionServer, inner: SQLStore) -> None:
    _, source = seed_accounts(server, [make_account("a-1", HEALTHY)])
    store = make_store(server, inner, source)
    assert [r["account_id"] for r in await store.load_accounts()] == ["a-1"]
    await store.aclose()


async def test_bad_token_fails_fast_and_is_never_shown(
    server: NotionServer, inner: SQLStore, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    database_id, _ = seed_accounts(server, [make_account("a-1", HEALTHY)])
    wrong = "secret_wrong_token_000"
    store = make_store(server, inner, database_id, token=wrong)
    with pytest.raises(NotionError) as raised:
        await store.load_accounts()
    message = str(raised.value)
    assert message == (
        f"Notion rejected the integration token for database {database_id} (401 unauthorized): check CSM_NOTION_TOKEN"
    )
    assert len(server.requests) == 1
    captured = capsys.readouterr()
    for text in (message, repr(raised.value), caplog.text, captured.out, captured.err):
        assert wrong not in text and TOKEN not in text
    await store.aclose()


async def test_403_and_400_fail_fast_naming_the_object(server: NotionServer) -> None:
    database_id, source = server.add_database("Accounts", {"Name": "title"})
    api = fast_api(server)
    server.fail(403, path_contains="/databases/")
    with pytest.raises(NotionError, match=f"may not access database {database_id} \\(403 restricted_resource\\)"):
        await api.data_source_id(database_id)
    server.fail(400, path_contains="/query", message="body.filter.property is not a valid property.")
    with pytest.raises(NotionError) as raised:
        await api.find_page(source, {"property": "Name", "title": {"equals": "x"}})
    assert str(raised.value) == (
        f"Notion rejected the request for data source {source} (400 validation_error): "
        "body.filter.property is not a valid property."
    )
    assert statuses(server, r"/databases/", "GET") == [403] and statuses(server, r"/query$") == [400]
    await api.aclose()


async def test_notion_validation_errors_surface_for_oversized_requests(server: NotionServer) -> None:
    database_id, source = server.add_database("QBRs", {"Name": "title"})
    api = fast_api(server)
    page = await api.create_page(source, {"Name": {"title": [{"type": "text", "text": {"content": "x"}}]}}, [])
    too_many = paragraphs("\n\n".join(f"Paragraph {i}" for i in range(101)))
    with pytest.raises(NotionError, match=r"400 validation_error.*should be ≤ `100`, instead was `101`"):
        await api.append_children(page["id"], too_many)
    long_text = {"type": "paragraph", "paragraph": {"rich_text": [{"type": "text", "text": {"content": "x" * 2001}}]}}
    with pytest.raises(NotionError, match=r"400 validation_error.*length should be ≤ `2000`, instead was `2001`"):
        await api.append_children(page["id"], [long_text])
    await api.aclose()


async def test_write_back_keeps_going_past_a_missing_page_but_stops_on_lost_access(
    server: NotionServer, inner: SQLStore
) -> None:
    database_id, source = seed_accounts(server, [make_account(f"a-{i}", HEALTHY) for i in range(3)])
    store = make_store(server, inner, database_id)
    await store.load_accounts()
    scores = [
        CSMHealthScore(account_id=f"a-{i}", score=80.0 + i, rag="GREEN", churn_risk_level="low", signal_breakdown={})
        for i in range(3)
    ]
    first_page = server.pages_in(source)[0]["id"]
    server.fail(404, method="PATCH", path_contains=first_page)
    await store.save_scores(scores)
    assert len(store.write_errors) == 1 and "a-0" in store.write_errors[0]
    assert statuses(server, r"/v1/pages/", "PATCH").count(200) == 2

    server.fail(401, method="PATCH")
    with pytest.raises(NotionError, match="401 unauthorized"):
        await store.save_scores([s.model_copy(update={"score": 10.0, "rag": "RED"}) for s in scores])
    await store.aclose()


async def test_the_shared_limiter_keeps_requests_at_most_3_per_second(server: NotionServer) -> None:
    server.rate_limit = RateLimit(requests=3, window_s=1.0)
    _, source = server.add_database("Accounts", {"Name": "title", "Key": "rich_text"})
    one, two = fast_api(server, rate=3), fast_api(server, rate=3)  # same token: one shared limiter

    def lookup(api: NotionAPI) -> object:
        return api.find_page(source, {"property": "Key", "rich_text": {"equals": "k"}})

    await asyncio.gather(*(lookup(api) for api in (one, two, one, two, one)))

    arrivals = sorted(r.at for r in server.requests)
    assert len(arrivals) == 5 and all(r.status == 200 for r in server.requests)
    assert all(later - earlier >= 0.98 for earlier, later in zip(arrivals, arrivals[3:], strict=False))
    await one.aclose()
    await two.aclose()
