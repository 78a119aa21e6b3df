"""A full day on every real backend at once, chosen by `CSM_*` settings alone, each against a wire-format peer.

Notion, Gmail, Slack and an OpenAI-compatible LLM are local servers speaking their APIs; PostgreSQL and Redis
are the machine's real servers (the test skips when either is absent).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from src.app.agents.runtime import open_agent
from src.app.config import CSMSettings
from src.app.tools.events.redis_streams import RedisEventBus, RedisStreamConsumer
from src.app.tools.store.notion.store import NotionStore
from src.app.tools.store.sql import SQLStore
from tests.integration.test_gmail_drafts import service_account_file
from tests.support.chat_servers import SlackServer
from tests.support.fakes import AT_RISK, HEALTHY, make_account
from tests.support.gmail_server import GmailServer
from tests.support.notion_server import EXPANSION_SCHEMA, QBR_SCHEMA, NotionServer, seed_accounts
from tests.support.openai_server import OpenAIServer
from tests.support.servers import REDIS_URL, require_redis

NOTION_TOKEN = "secret_e2e_notion_token"
LLM_KEY = "sk-e2e-llm-key"
AT_RISK_IDS = [f"risk-{n}" for n in range(3)]
HEALTHY_IDS = [f"ok-{n}" for n in range(9)]


@dataclass
class Peers:
    notion: NotionServer
    gmail: GmailServer
    slack: SlackServer
    llm: OpenAIServer
    qbr_source: str


@pytest.fixture
def peers(tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Peers]:
    require_redis()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    records = [make_account(i, AT_RISK, renews_in_days=30, chat_space="#cs-alerts") for i in AT_RISK_IDS]
    records += [make_account(i, HEALTHY, chat_space="#cs-alerts") for i in HEALTHY_IDS]
    with (
        NotionServer(token=NOTION_TOKEN) as notion,
        GmailServer(public_key_pem=public_pem) as gmail,
        SlackServer() as slack,
        OpenAIServer() as llm,
    ):
        accounts_db, _ = seed_accounts(notion, records)
        qbr_db, qbr_source = notion.add_database("QBRs", QBR_SCHEMA)
        expansion_db, _ = notion.add_database("Expansion", EXPANSION_SCHEMA)
        environment = {
            "CSM_DATA_DIR": str(tmp_path / "data"),
            "CSM_DATABASE_URL": postgres_url,
            "CSM_TENANT_ID": f"e2e-{uuid.uuid4().hex[:8]}",
            "CSM_REDIS_URL": REDIS_URL,
            "CSM_NOTION_TOKEN": NOTION_TOKEN,
            "CSM_NOTION_BASE_URL": notion.base_url,
            "CSM_NOTION_ACCOUNTS_DATABASE_ID": accounts_db,
            "CSM_NOTION_QBR_DATABASE_ID": qbr_db,
            "CSM_NOTION_EXPANSION_DATABASE_ID": expansion_db,
            "CSM_NOTION_REQUESTS_PER_S": "200",
            "CSM_GMAIL_CREDENTIALS_FILE": str(service_account_file(tmp_path, key, gmail.token_uri)),
            "CSM_GMAIL_DELEGATE_TO_REP": "true",
            "CSM_GMAIL_API_BASE": gmail.api_root,
            "CSM_SLACK_BOT_TOKEN": slack.token,
            "CSM_SLACK_API_BASE": slack.api_base,
            "CSM_CHAT_MESSAGES_PER_S": "50",
            "CSM_LLM_MODEL": "openai/csm-e2e",
            "CSM_LLM_API_BASE": llm.url,
            "CSM_LLM_API_KEY": LLM_KEY,
            "CSM_LLM_RESPONSE_FORMAT": "json_schema",  # a self-hosted server: litellm cannot know it takes schemas
            "CSM_ALLOWED_RECIPIENT_DOMAINS": "example.com",
        }
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        yield Peers(notion, gmail, slack, llm, qbr_source)


@pytest.fixture
async def alerts_reader() -> AsyncIterator[RedisStreamConsumer]:
    bus = RedisEventBus.from_settings(CSMSettings(_env_file=None))  # type: ignore[call-arg]
    reader = bus.consumer("churn_alerts", f"e2e-{uuid.uuid4().hex[:8]}", "checker")
    await reader.ensure_group()  # from now on: only this test's entries are new to the group
    yield reader
    await bus.aclose()


async def test_a_day_on_every_real_backend_is_configuration_only(
    peers: Peers, alerts_reader: RedisStreamConsumer
) -> None:
    settings = CSMSettings(_env_file=None)  # type: ignore[call-arg]
    async with open_agent(settings) as (agent, store):
        assert isinstance(store, NotionStore)
        scan = await agent.execute({"type": "health_scan"}, {})
        qbr = await agent.execute({"type": "generate_qbr", "account_id": AT_RISK_IDS[0]}, {})

    assert len(scan["health_scores"]) == len(AT_RISK_IDS) + len(HEALTHY_IDS)
    assert scan["alerts_dispatched"] == len(AT_RISK_IDS)
    assert "error" not in qbr and qbr["qbr_page_id"]

    # Notion: every account's score written back once; one typed QBR page.
    updates = peers.notion.requests_to("PATCH", "/v1/pages/")
    assert len(updates) == len(AT_RISK_IDS) + len(HEALTHY_IDS)
    written = [set((update.body or {})["properties"]) for update in updates]
    assert all({"CSM Health Score", "CSM Health RAG", "CSM Last Scan"} <= names for names in written)
    qbr_pages = peers.notion.pages_in(peers.qbr_source)
    assert len(qbr_pages) == 1
    assert qbr_pages[0]["properties"]["Account ID"]["rich_text"][0]["plain_text"] == AT_RISK_IDS[0]

    # Gmail: one draft per alert plus the QBR, in the rep's mailbox; nothing was ever delivered.
    assert len(peers.gmail.drafts) == len(AT_RISK_IDS) + 1
    assert {draft.user_id for draft in peers.gmail.drafts} == {"rep@example.com"}
    assert peers.gmail.delivery_attempts == []

    # Slack: one threaded message per alert in the account's channel.
    assert [m.payload["channel"] for m in peers.slack.messages] == ["#cs-alerts"] * len(AT_RISK_IDS)

    # Redis Streams: one envelope per alert, stamped with this tenant.
    events = await alerts_reader.read(count=100, block_ms=1000)
    mine = [e for e in events if e.envelope.tenant_id == settings.tenant_id]
    assert sorted(e.envelope.payload["account_id"] for e in mine) == sorted(AT_RISK_IDS)
    await alerts_reader.ack(*[e.message_id for e in events])

    # PostgreSQL: the system of record holds the scores and the review queue.
    records = SQLStore(settings.resolved_database_url)
    try:
        assert len(await records.latest_scores()) == len(AT_RISK_IDS) + len(HEALTHY_IDS)
        assert len(await records.list_drafts(limit=100)) == len(AT_RISK_IDS) + 1
    finally:
        await records.aclose()

    # The LLM: every call went to the configured server with the key; usage is accounted per task.
    assert peers.llm.requests
    assert {r.headers.get("Authorization") for r in peers.llm.requests} == {f"Bearer {LLM_KEY}"}
    assert qbr["llm_usage"]["calls"] >= 1
    assert qbr["llm_usage"]["prompt_tokens"] > 0
    assert all(r.body["response_format"]["type"] == "json_schema" for r in peers.llm.requests)
    assert LLM_KEY not in json.dumps([scan, qbr]) and NOTION_TOKEN not in json.dumps([scan, qbr])
