"""Notion QBR pages and expansion records: typed properties, long bodies, idempotent creation, 5xx on create."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from src.app.config import CSMSettings
from src.app.schemas import CSMHealthScore, ExpansionOpportunity, QBRContent
from src.app.tools.store.notion.api import NotionServerError, RetryPolicy
from src.app.tools.store.notion.blocks import qbr_blocks
from src.app.tools.store.notion.store import NotionStore
from src.app.tools.store.sql import SQLStore
from tests.support.fakes import HEALTHY, make_account
from tests.support.notion_server import (
    EXPANSION_SCHEMA,
    QBR_SCHEMA,
    NotionServer,
    iter_blocks_text,
    seed_accounts,
)

TOKEN = "secret_pages_token_456"
FAST = RetryPolicy(max_attempts=4, backoff_s=0.01)
KEY = "qbr:acct-1:Q4 2026:quarterly"


@dataclass
class Workspace:
    server: NotionServer
    store: NotionStore
    inner: SQLStore
    account_page: str
    qbr_source: str
    expansion_source: str


@pytest.fixture
def server() -> Iterator[NotionServer]:
    with NotionServer(token=TOKEN) as running:
        yield running


async def open_workspace(tmp_path: Path, server: NotionServer, *, qbr_schema: dict[str, str] = QBR_SCHEMA) -> Workspace:
    accounts_db, accounts_source = seed_accounts(server, [make_account("acct-1", HEALTHY, name="Beacon Robotics")])
    qbr_db, qbr_source = server.add_database("QBRs", qbr_schema)
    expansion_db, expansion_source = server.add_database("Expansion", EXPANSION_SCHEMA)
    settings = CSMSettings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path / "data",
        notion_token=TOKEN,
        notion_base_url=server.base_url,
        notion_accounts_database_id=accounts_db,
        notion_qbr_database_id=qbr_db,
        notion_expansion_database_id=expansion_db,
        notion_requests_per_s=1000,
    )
    inner = SQLStore(f"sqlite:///{tmp_path / 'inner.sqlite'}")
    store = NotionStore.from_settings(settings, inner, retry=FAST)
    await store.load_accounts()
    score = CSMHealthScore(
        account_id="acct-1", score=82.5, rag="GREEN", churn_risk_level="low", signal_breakdown={}, computed_at=NOW
    )
    await inner.save_scores([score])
    account_page = server.pages_in(accounts_source)[0]["id"]
    return Workspace(server, store, inner, account_page, qbr_source, expansion_source)


@pytest.fixture
async def ws(tmp_path: Path, server: NotionServer) -> AsyncIterator[Workspace]:
    workspace = await open_workspace(tmp_path, server)
    yield workspace
    await workspace.store.aclose()


NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def long_qbr() -> QBRContent:
    return QBRContent(
        account_id="acct-1",
        account_name="Beacon Robotics",
        period="Q4 2026",
        trigger="quarterly",
        health_summary=("Healthy and growing. " * 225).strip(),  # 4,724 characters in one paragraph
        roi_metrics={"arr": 127200.0, "seats_active": 151},
        feature_adoption_scorecard={f"feature_{i:03d}": "adopted" if i % 3 else "unused" for i in range(150)},
        expansion_next_steps=["Offer the analytics module"],
        risks=["Champion may leave"],
    )


def opportunity(talk_track: str = "Lead with the seat overage. " * 120) -> ExpansionOpportunity:
    return ExpansionOpportunity(
        account_id="acct-1",
        opportunity_type="seats",
        evidence=["151 of 177 seats active", "usage up 12% this quarter"],
        estimated_arr_impact=25440.0,
        recommended_talk_track=talk_track,
        confidence="high",
    )


def creates(server: NotionServer) -> list:
    return server.requests_to("POST", r"^/v1/pages$")


async def test_qbr_page_has_typed_properties_and_its_whole_body_in_order(ws: Workspace) -> None:
    qbr = long_qbr()
    expected = qbr_blocks(qbr)
    assert len(expected) > 150

    saved = await ws.store.save_qbr(qbr, idempotency_key=KEY)

    assert saved.created
    [create] = creates(ws.server)
    assert create.body is not None and len(create.body["children"]) == 100
    appends = ws.server.requests_to("PATCH", r"/v1/blocks/.+/children$")
    assert len(appends) == math.ceil((len(expected) - 100) / 100)
    assert all(a.body is not None and 0 < len(a.body["children"]) <= 100 for a in appends)
    [page] = ws.server.pages_in(ws.qbr_source)
    blocks = ws.server.blocks[page["id"]]
    assert list(iter_blocks_text(blocks)) == [
        "".join(item["text"]["content"] for item in block[block["type"]]["rich_text"]) for block in expected
    ]
    summary = blocks[1]["paragraph"]["rich_text"]
    assert [len(item["plain_text"]) for item in summary] == [2000, 2000, 724]
    assert "".join(item["plain_text"] for item in summary) == qbr.health_summary
    props = page["properties"]
    assert props["Name"]["title"][0]["plain_text"] == "QBR Q4 2026: Beacon Robotics"
    assert props["Account"]["relation"] == [{"id": ws.account_page}]
    assert props["Account ID"]["rich_text"][0]["plain_text"] == "acct-1"
    assert props["Period"]["select"]["name"] == "Q4 2026"
    assert props["Trigger"]["select"]["name"] == "quarterly"
    assert props["Health RAG"]["select"]["name"] == "GREEN"
    assert props["Health Score"]["number"] == 82.5
    assert props["Date"]["date"]["start"] == datetime.now(UTC).date().isoformat()
    assert props["CSM Key"]["rich_text"][0]["plain_text"] == KEY
    [audit] = [e for e in await ws.inner.list_audit() if e.artifact == "notion_page:qbr"]
    assert audit.idempotency_key == f"{KEY}:notion" and audit.detail["page_id"] == page["id"]


async def test_a_rerun_creates_nothing_twice(ws: Workspace) -> None:
    first = await ws.store.save_qbr(long_qbr(), idempotency_key=KEY)
    ws.server.requests.clear()

    again = await ws.store.save_qbr(long_qbr(), idempotency_key=KEY)

    assert again.artifact_id == first.artifact_id and not again.created
    assert creates(ws.server) == [] and len(ws.server.pages_in(ws.qbr_source)) == 1
    [lookup] = ws.server.requests_to("POST", r"/query$")
    assert lookup.body is not None and lookup.body["filter"] == {"property": "CSM Key", "rich_text": {"equals": KEY}}


async def test_a_rerun_creates_the_page_a_failed_run_left_out(ws: Workspace) -> None:
    await ws.inner.save_qbr(long_qbr(), idempotency_key=KEY)  # saved locally, then Notion failed

    saved = await ws.store.save_qbr(long_qbr(), idempotency_key=KEY)

    assert not saved.created
    assert len(creates(ws.server)) == 1 and len(ws.server.pages_in(ws.qbr_source)) == 1


async def test_a_create_answered_500_after_it_was_applied_is_not_duplicated(ws: Workspace) -> None:
    ws.server.fail(500, method="POST", path_contains="/v1/pages", after_apply=True)

    await ws.store.save_qbr(long_qbr(), idempotency_key=KEY)

    assert len(creates(ws.server)) == 1
    assert len(ws.server.pages_in(ws.qbr_source)) == 1
    [lookup] = ws.server.requests_to("POST", rf"/v1/data_sources/{ws.qbr_source}/query$")  # instead of a 2nd create
    assert lookup.body is not None and lookup.body["filter"]["rich_text"] == {"equals": KEY}


async def test_a_create_answered_503_before_it_was_applied_is_retried_once(ws: Workspace) -> None:
    ws.server.fail(503, method="POST", path_contains="/v1/pages")

    await ws.store.save_qbr(long_qbr(), idempotency_key=KEY)

    assert [r.status for r in creates(ws.server)] == [503, 200]
    assert len(ws.server.pages_in(ws.qbr_source)) == 1


async def test_without_a_key_property_a_failed_create_is_not_retried(tmp_path: Path, server: NotionServer) -> None:
    schema = {k: v for k, v in QBR_SCHEMA.items() if k != "CSM Key"}
    ws = await open_workspace(tmp_path, server, qbr_schema=schema)
    server.fail(500, method="POST", path_contains="/v1/pages", after_apply=True)
    with pytest.raises(NotionServerError, match="not retried: the qbr database has no 'CSM Key' property"):
        await ws.store.save_qbr(long_qbr(), idempotency_key=KEY)
    assert len(creates(server)) == 1
    await ws.store.aclose()


async def test_properties_follow_the_database_types(tmp_path: Path, server: NotionServer) -> None:
    schema = {
        "Title": "title",
        "Account": "rich_text",
        "Period": "rich_text",
        "CSM Key": "rich_text",
        "Other": "number",
    }
    ws = await open_workspace(tmp_path, server, qbr_schema=schema)
    await ws.store.save_qbr(long_qbr(), idempotency_key=KEY)
    [page] = server.pages_in(ws.qbr_source)
    props = page["properties"]
    assert props["Title"]["title"][0]["plain_text"] == "QBR Q4 2026: Beacon Robotics"
    assert props["Account"]["rich_text"][0]["plain_text"] == "acct-1"
    assert props["Period"]["rich_text"][0]["plain_text"] == "Q4 2026"
    assert props["Other"]["number"] is None
    await ws.store.aclose()


async def test_expansion_record_has_typed_properties(ws: Workspace) -> None:
    talk_track = "Lead with the seat overage. " * 120  # 3,360 characters
    saved = await ws.store.save_opportunity(opportunity(talk_track), idempotency_key="opp:acct-1:seats:Q4 2026")
    assert saved.created
    [page] = ws.server.pages_in(ws.expansion_source)
    props = page["properties"]
    assert props["Name"]["title"][0]["plain_text"] == "Beacon Robotics: seats expansion"
    assert props["Account"]["relation"] == [{"id": ws.account_page}]
    assert props["Opportunity Type"]["select"]["name"] == "seats"
    assert props["Confidence"]["select"]["name"] == "high"
    assert props["Estimated ARR Impact"]["number"] == 25440.0
    assert props["Evidence"]["rich_text"][0]["plain_text"] == "151 of 177 seats active\nusage up 12% this quarter"
    assert [len(item["plain_text"]) for item in props["Talk Track"]["rich_text"]] == [2000, 1360]
    assert props["CSM Key"]["rich_text"][0]["plain_text"] == "opp:acct-1:seats:Q4 2026"
    texts = list(iter_blocks_text(ws.server.blocks[page["id"]]))
    assert texts[:3] == ["Evidence", "151 of 177 seats active", "usage up 12% this quarter"]
    assert texts[3:] == ["Talk track", talk_track.strip()]

    again = await ws.store.save_opportunity(opportunity(talk_track), idempotency_key="opp:acct-1:seats:Q4 2026")
    assert not again.created and len(ws.server.pages_in(ws.expansion_source)) == 1


async def test_without_artifact_databases_only_the_inner_store_is_written(tmp_path: Path, server: NotionServer) -> None:
    accounts_db, _ = seed_accounts(server, [make_account("acct-1", HEALTHY)])
    settings = CSMSettings(  # type: ignore[call-arg]
        _env_file=None, notion_token=TOKEN, notion_base_url=server.base_url, notion_accounts_database_id=accounts_db
    )
    inner = SQLStore(f"sqlite:///{tmp_path / 'inner.sqlite'}")
    store = NotionStore.from_settings(settings, inner, retry=FAST)
    assert (await store.save_qbr(long_qbr(), idempotency_key=KEY)).created
    assert (await store.save_opportunity(opportunity(), idempotency_key="opp:1")).created
    assert server.requests == [] and len(await inner.list_qbrs()) == 1
    await store.aclose()
