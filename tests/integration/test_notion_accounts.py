"""Notion accounts: paginated reads, property mapping, bad pages, and score write-back through the real scan graph."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from src.app.analysis.health import CSMHealthScorer
from src.app.analysis.signals import parse_account, signals_from_record
from src.app.config import CSMSettings
from src.app.context import CSMContext
from src.app.graph.customer_success import build_customer_success_graph
from src.app.tools.store.notion.api import RetryPolicy
from src.app.tools.store.notion.store import NotionStore
from src.app.tools.store.sql import SQLStore
from tests.conftest import NOW
from tests.support.fakes import AT_RISK, HEALTHY, make_account
from tests.support.notion_server import (
    ACCOUNTS_SCHEMA,
    NotionServer,
    p_checkbox,
    p_date,
    p_email,
    p_formula,
    p_multi,
    p_number,
    p_people,
    p_relation,
    p_rollup,
    p_select,
    p_status,
    p_text,
    p_title,
    seed_accounts,
)

TOKEN = "secret_accounts_token_123"
UTC_ZONE = ZoneInfo("UTC")
FAST = RetryPolicy(max_attempts=4, backoff_s=0.01)


@pytest.fixture
def server() -> Iterator[NotionServer]:
    with NotionServer(token=TOKEN) as running:
        yield running


def notion_settings(tmp_path: Path, server: NotionServer, accounts_database_id: str) -> CSMSettings:
    return CSMSettings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path / "data",
        notion_token=TOKEN,
        notion_base_url=server.base_url,
        notion_accounts_database_id=accounts_database_id,
        notion_requests_per_s=1000,
    )


@pytest.fixture
async def inner(tmp_path: Path) -> AsyncIterator[SQLStore]:
    store = SQLStore(f"sqlite:///{tmp_path / 'inner.sqlite'}")
    yield store
    await store.aclose()


async def open_store(tmp_path: Path, server: NotionServer, database_id: str, inner: SQLStore) -> NotionStore:
    return NotionStore.from_settings(notion_settings(tmp_path, server, database_id), inner, retry=FAST)


def book(n: int, *, at_risk_every: int = 0) -> list[dict]:
    return [
        make_account(f"acct-{i:04d}", AT_RISK if at_risk_every and i % at_risk_every == 0 else HEALTHY)
        for i in range(n)
    ]


async def test_reads_every_page_100_per_query_following_next_cursor(
    tmp_path: Path, server: NotionServer, inner: SQLStore
) -> None:
    database_id, source = seed_accounts(server, book(250))
    store = await open_store(tmp_path, server, database_id, inner)
    records = await store.load_accounts()
    assert [r["account_id"] for r in records] == [f"acct-{i:04d}" for i in range(250)]
    queries = server.requests_to("POST", rf"/v1/data_sources/{source}/query$")
    assert len(queries) == 3
    assert [q.body and q.body.get("page_size") for q in queries] == [100, 100, 100]
    assert [q.body and q.body.get("start_cursor") for q in queries][0] is None
    assert all(q.body and q.body.get("start_cursor") for q in queries[1:])
    assert len(server.requests_to("GET", rf"/v1/databases/{database_id}$")) == 1

    # The scan's follow-up reads of chosen accounts come from the snapshot: no further requests.
    before = len(server.requests)
    [one] = await store.load_accounts(["acct-0007"], active_only=False)
    assert one["name"] == "Company acct-0007" and one["notion_page_id"]
    assert len(server.requests) == before
    await store.aclose()


async def test_maps_every_property_type_onto_account_fields(
    tmp_path: Path, server: NotionServer, inner: SQLStore
) -> None:
    schema = {
        "Name": "title",
        "Account ID": "rich_text",
        "ARR": "formula",
        "Plan": "select",
        "Active": "checkbox",
        "Rep Email": "email",
        "Account Executive": "people",
        "Chat Space": "select",
        "Renewal Date": "date",
        "Feature Adoption Rate": "rollup",
        "Usage Trend": "status",
        "Login Frequency Days": "number",
        "Days Since Last Interaction": "formula",
        "Stakeholder Engagement": "rich_text",
        "NPS": "number",
        "Invoice Payment Status": "select",
        "Seats Utilization Rate": "number",
        "Open Tickets": "relation",
        "Avg Ticket Sentiment": "select",
        "Escalations (90 Days)": "rollup",
        "Health Status": "select",
        "Collections Risk": "formula",
        "Features Available": "multi_select",
        "Feature Usage": "rich_text",
        "Usage History": "rich_text",
        "Seats Purchased": "number",
        "Notes": "rich_text",
        "Contacts": "rollup",
    }
    database_id, source = server.add_database("Accounts", schema)
    page_id = server.add_page(
        source,
        {
            "Name": p_title("Beacon Robotics"),
            "Account ID": p_text("acct-42"),
            "ARR": p_formula(127200),
            "Plan": p_select("Professional"),
            "Active": p_checkbox(True),
            "Rep Email": p_email("priya@example.com"),
            "Account Executive": p_people(["chris@example.com"]),
            "Chat Space": p_select("#cs-mid-market"),
            "Renewal Date": p_date("2027-06-21T09:00:00.000+02:00"),
            "Feature Adoption Rate": p_rollup(0.75),
            "Usage Trend": p_status("Declining"),
            "Login Frequency Days": p_number(7),
            "Days Since Last Interaction": p_formula(26),
            "Stakeholder Engagement": p_text("High"),
            "NPS": p_number(9.0),
            "Invoice Payment Status": p_select("Overdue 90+"),
            "Seats Utilization Rate": p_number(0.85),
            "Open Tickets": p_relation(["t-1", "t-2", "t-3"]),
            "Avg Ticket Sentiment": p_select("Negative"),
            "Escalations (90 Days)": p_rollup([p_title("ESC-1"), p_title("ESC-2")]),
            "Health Status": p_select("Amber"),
            "Collections Risk": p_formula("red"),
            "Features Available": p_multi(["contacts", "tasks", "sso"]),
            "Feature Usage": p_text("contacts: 314, tasks: 0"),
            "Usage History": p_text("153, 155, 151"),
            "Seats Purchased": p_number(177),
            "Notes": p_text("Exec sponsor is a champion."),
            "Contacts": p_rollup([p_email("a@customer.com")]),
        },
    )
    store = await open_store(tmp_path, server, database_id, inner)
    [record] = await store.load_accounts()
    assert record == {
        "account_id": "acct-42",
        "name": "Beacon Robotics",
        "arr": 127200.0,
        "plan": "professional",
        "status": "active",
        "rep_email": "priya@example.com",
        "ae_email": "chris@example.com",
        "chat_space": "#cs-mid-market",
        "contract_end_date": "2027-06-21T09:00:00.000+02:00",
        "feature_adoption_rate": 0.75,
        "usage_trend": "declining",
        "login_frequency_days": 7,
        "days_since_last_interaction": 26,
        "stakeholder_engagement": "high",
        "nps_score": 9,
        "invoice_payment_status": "overdue_90_plus",
        "seats_utilization_rate": 0.85,
        "open_ticket_count": 3,
        "avg_ticket_sentiment": "negative",
        "escalation_count_90_days": 2,
        "tam_health_rag": "AMBER",
        "collections_risk": "RED",
        "features_available": ["contacts", "tasks", "sso"],
        "feature_usage": {"contacts": 314, "tasks": 0},
        "usage_history": [153, 155, 151],
        "seats_purchased": 177,
        "notes": "Exec sponsor is a champion.",
        "notion_page_id": page_id,
    }
    # The record feeds the domain layer as is.
    signals = signals_from_record(record, now=NOW, tz=UTC_ZONE)
    assert signals.tam_health_rag == "AMBER" and signals.days_to_renewal is not None
    assert parse_account(record).feature_usage == {"contacts": 314, "tasks": 0}
    await store.aclose()


async def test_snake_case_property_names_and_page_id_fallback(
    tmp_path: Path, server: NotionServer, inner: SQLStore
) -> None:
    schema = {
        "name": "title",
        "usage_trend": "select",
        "feature_adoption_rate": "number",
        "status": "select",
        "ae_email": "people",
    }
    database_id, source = server.add_database("Accounts", schema)
    page_id = server.add_page(
        source,
        {
            "name": p_title("Snake Co"),
            "usage_trend": p_select("growing"),
            "feature_adoption_rate": p_number(0.5),
            "status": p_select("Churned"),
            "ae_email": {"type": "people", "people": [{"object": "user", "id": "u-1"}]},  # no email capability
        },
    )
    store = await open_store(tmp_path, server, database_id, inner)
    assert await store.load_accounts() == []  # not active
    [record] = await store.load_accounts(active_only=False)
    assert record["account_id"] == page_id and record["status"] == "churned"
    assert record["usage_trend"] == "growing" and record["feature_adoption_rate"] == 0.5
    assert "ae_email" not in record
    await store.aclose()


async def test_malformed_pages_are_reported_by_property_and_value_and_skipped(
    tmp_path: Path, server: NotionServer, inner: SQLStore
) -> None:
    schema = {**ACCOUNTS_SCHEMA, "Rep Email": "rich_text"}
    database_id, source = seed_accounts(server, book(3), schema=schema)
    pages = server.pages_in(source)
    pages[0]["properties"]["NPS Score"] = p_number(7.5)
    pages[0]["properties"]["Rep Email"] = p_text("nobody")
    pages[1]["properties"]["Name"] = p_title("")
    server.add_page(source, {"Name": p_title("Twin"), "Account ID": p_text("acct-0002")})
    store = await open_store(tmp_path, server, database_id, inner)

    records = await store.load_accounts()

    assert [r["account_id"] for r in records] == ["acct-0002"]
    messages = [str(error) for error in store.load_errors]
    assert len(messages) == 3
    assert f"Notion page {pages[0]['id']} (account acct-0000)" in messages[0]
    assert "property 'NPS Score' (number) = 7.5 is not a whole number" in messages[0]
    assert "property 'Rep Email' (rich_text) = 'nobody' is not an email address" in messages[0]
    assert "property 'Name' is empty" in messages[1]
    assert "duplicate account id 'acct-0002'" in messages[2]
    await store.aclose()


async def test_scan_of_the_book_queries_once_per_100_and_writes_back_only_changes(
    tmp_path: Path, server: NotionServer, ctx: CSMContext
) -> None:
    n = 230
    database_id, source = seed_accounts(server, book(n, at_risk_every=10))
    inner = ctx.store
    assert isinstance(inner, SQLStore)
    store = await open_store(tmp_path, server, database_id, inner)
    graph = build_customer_success_graph()
    notion_ctx = replace(ctx, store=store)

    result = (await graph.ainvoke({"task": {"type": "health_scan"}}, context=notion_ctx))["result"]

    assert result["scanned_count"] == n and result["errors"] == []
    queries = server.requests_to("POST", rf"/v1/data_sources/{source}/query$")
    updates = server.requests_to("PATCH", r"/v1/pages/")
    assert len(queries) == math.ceil(n / 100)
    assert len(updates) == n  # nothing was written before: every page changes
    assert len(server.requests) == 1 + len(queries) + len(updates)  # + databases.retrieve
    risky = next(
        p for p in server.pages_in(source) if p["properties"]["Account ID"]["rich_text"][0]["plain_text"] == "acct-0010"
    )
    assert risky["properties"]["CSM Health RAG"]["select"]["name"] == "RED"
    assert isinstance(risky["properties"]["CSM Health Score"]["number"], float)
    assert risky["properties"]["CSM Last Scan"]["date"]["start"].startswith(NOW.date().isoformat())

    # Next day, one account declines: a fresh read, and one update for the one changed page.
    server.requests.clear()
    page = server.pages_in(source)[3]
    page["properties"]["Usage Trend"] = p_select("inactive")
    page["properties"]["Login Frequency Days"] = p_number(90)
    next_day = replace(notion_ctx, clock=lambda: NOW + timedelta(days=1))
    await graph.ainvoke({"task": {"type": "health_scan"}}, context=next_day)
    assert len(server.requests_to("POST", r"/query$")) == math.ceil(n / 100)
    [update] = server.requests_to("PATCH", r"/v1/pages/")
    assert update.path == f"/v1/pages/{page['id']}"
    assert set(update.body["properties"]) == {"CSM Health Score", "CSM Health RAG", "CSM Last Scan"}
    await store.aclose()


async def test_save_scores_skips_pages_that_already_hold_the_score(
    tmp_path: Path, server: NotionServer, inner: SQLStore
) -> None:
    records = book(5)
    database_id, source = seed_accounts(server, records)
    scorer = CSMHealthScorer()
    scores = [
        scorer.score(signals_from_record(r, now=NOW, tz=UTC_ZONE), r["account_id"], computed_at=NOW) for r in records
    ]
    pages = server.pages_in(source)
    for page, score in zip(pages[:3], scores[:3], strict=True):
        page["properties"]["CSM Health Score"] = p_number(score.score)
        page["properties"]["CSM Health RAG"] = p_select(score.rag)
    pages[2]["properties"]["CSM Health RAG"] = p_select("RED")  # held RAG differs
    store = await open_store(tmp_path, server, database_id, inner)
    await store.load_accounts()

    await store.save_scores(scores)
    await store.save_scores(scores)  # the pages now hold these values: nothing more to write

    updated = sorted(r.path.rsplit("/", 1)[1] for r in server.requests_to("PATCH", r"/v1/pages/"))
    assert updated == sorted(p["id"] for p in pages[2:])
    assert len(await inner.latest_scores()) == 5  # the inner store keeps the history
    await store.aclose()


async def test_accounts_are_edited_in_notion_not_imported(
    tmp_path: Path, server: NotionServer, inner: SQLStore
) -> None:
    database_id, _ = seed_accounts(server, book(1))
    store = await open_store(tmp_path, server, database_id, inner)
    with pytest.raises(Exception, match=f"Notion database {database_id}; add or edit them there"):
        await store.upsert_accounts(book(2))
    await store.aclose()


async def test_a_scan_reports_unreadable_pages_in_its_errors_and_scores_the_rest(
    tmp_path: Path, server: NotionServer, ctx: CSMContext
) -> None:
    database_id, source = seed_accounts(server, book(4))
    pages = server.pages_in(source)
    pages[1]["properties"]["NPS Score"] = p_number(7.5)
    inner = ctx.store
    assert isinstance(inner, SQLStore)
    store = await open_store(tmp_path, server, database_id, inner)
    graph = build_customer_success_graph()

    result = (await graph.ainvoke({"task": {"type": "health_scan"}}, context=replace(ctx, store=store)))["result"]

    assert sorted(s["account_id"] for s in result["health_scores"]) == ["acct-0000", "acct-0002", "acct-0003"]
    [error] = result["errors"]
    assert error["account_id"] == "acct-0001"
    assert "property 'NPS Score' (number) = 7.5 is not a whole number" in error["message"]
    assert set(await inner.latest_scores()) == {"acct-0000", "acct-0002", "acct-0003"}

    named = await graph.ainvoke(
        {"task": {"type": "health_scan", "account_ids": ["acct-0001"]}}, context=replace(ctx, store=store)
    )
    [named_error] = named["result"]["errors"]
    assert "NPS Score" in named_error["message"]
    await store.aclose()
