"""Issue 13: the seed platform's services plug in as they are (duck typed, wrapped in our Protocols), and the
defects found from outside stay fixed. The platform's services are plain recording classes of exactly its shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from src.app.agents.base import AgentRegistration
from src.app.agents.customer_success.agent import CustomerSuccessAgent
from src.app.agents.customer_success.scheduler import CSMScheduler
from src.app.analysis.health import CSMHealthScorer
from src.app.config import CSMSettings
from src.app.tools.platform import ServiceShapeError
from src.app.tools.store.sql import SQLStore
from tests.graph.test_task_subgraphs import EXPANSION_READY
from tests.support.fakes import AT_RISK, HEALTHY, RecordingMail, ScriptedLLM
from tests.support.platform_fakes import (
    PlatformChatService,
    PlatformEventBus,
    PlatformGmail,
    PlatformLLMService,
    PlatformNotion,
    PlatformSales,
)

TENANT = {"tenant_id": "acme-tenant", "call_chain": ["orchestrator"], "correlation_id": "corr-1"}


def registration() -> AgentRegistration:
    return AgentRegistration(agent_id="csm-platform", name="CustomerSuccess", version="1.0", capabilities=[])


def account(account_id: str, signals: dict[str, Any], *, renews_in_days: int = 300, **extra: Any) -> dict[str, Any]:
    """A platform account dict: page `id`, our identity fields, signals and a contract end relative to today."""
    return {
        "id": f"page-{account_id}",
        "account_id": account_id,
        "name": f"Company {account_id}",
        "arr": 120_000.0,
        "rep_email": "rep@example.com",
        "ae_email": "ae@example.com",
        "chat_space": "spaces/cs-team",
        "contract_end_date": (date.today() + timedelta(days=renews_in_days)).isoformat(),
        "csm_health_score": None,
        "csm_health_rag": None,
        **signals,
        **extra,
    }


@dataclass
class Platform:
    notion: PlatformNotion
    gmail: PlatformGmail
    chat: PlatformChatService
    bus: PlatformEventBus
    llm: PlatformLLMService
    sales: PlatformSales
    store: SQLStore
    settings: CSMSettings

    def agent(self, **overrides: Any) -> CustomerSuccessAgent:
        services: dict[str, Any] = {
            "llm_service": self.llm,
            "notion_csm": self.notion,
            "gmail_service": self.gmail,
            "chat_service": self.chat,
            "event_bus": self.bus,
            "health_scorer": CSMHealthScorer(),
            "sales_agent": self.sales,
        }
        services.update(overrides)
        return CustomerSuccessAgent(registration(), settings=self.settings, store=self.store, **services)


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    store = SQLStore(f"sqlite:///{tmp_path / 'inner.sqlite'}")
    notion = PlatformNotion(
        [
            account("healthy", HEALTHY),
            account("risk", AT_RISK, renews_in_days=20),
            account("grow", EXPANSION_READY),
            {
                "id": "page-min",
                "account_id": "min",
                "name": "Minimal Co",
                "csm_health_score": 55,
                "csm_health_rag": "AMBER",
            },
        ]
    )
    yield Platform(
        notion=notion,
        gmail=PlatformGmail(),
        chat=PlatformChatService(),
        bus=PlatformEventBus(),
        llm=PlatformLLMService(),
        sales=PlatformSales(),
        store=store,
        settings=CSMSettings(data_dir=tmp_path / "data", database_url=None, _env_file=None),  # type: ignore[call-arg]
    )
    await store.aclose()


# -- all four tasks through the platform's services --------------------------------------------------------------


async def test_health_scan_reads_the_platform_book_and_alerts_through_its_services(platform: Platform) -> None:
    result = await platform.agent().execute({"type": "health_scan"}, TENANT)

    scored = {s["account_id"]: s for s in result["health_scores"]}
    assert set(scored) == {"healthy", "risk", "grow"}
    assert [e["account_id"] for e in result["errors"]] == ["min"] and "insufficient data" in result["errors"][0][
        "message"
    ]
    for score in scored.values():
        breakdown = score["signal_breakdown"]
        assert breakdown["support"] == breakdown["support_tickets"]  # the platform's name, ours kept
    updates = {page: (value, rag) for page, value, rag in platform.notion.health_updates}
    assert updates["page-risk"] == (round(scored["risk"]["score"], 2), scored["risk"]["rag"])
    assert set(updates) == {"page-healthy", "page-risk", "page-grow"}

    assert result["alerts_dispatched"] == 1
    [(stream, event)] = platform.bus.published
    assert stream == "churn_alerts" and event.event_type == "csm_churn_alert"
    assert (event.tenant_id, event.source_agent_id, event.correlation_id) == ("acme-tenant", "csm-platform", "corr-1")
    assert event.call_chain == ["orchestrator", "csm-platform"] and event.data["account_id"] == "risk"
    assert event.priority in ("high", "normal")
    [(email, user_email)] = platform.gmail.drafts
    assert email.to == "rep@example.com" and "Company risk" in email.subject and email.bcc == [] and user_email is None
    assert email.body_html and email.body_text
    [message] = platform.chat.messages
    assert (message.space_name, message.thread_key) == ("spaces/cs-team", "risk")
    assert platform.gmail.sent == []

    assert platform.llm.calls and {c["temperature"] for c in platform.llm.calls} == {0.4}
    usage = result["llm_usage"]
    assert usage["calls"] == len(platform.llm.calls) and usage["prompt_tokens"] == 100 * len(platform.llm.calls)
    assert usage["by_model"]["platform-reasoning"]["completion_tokens"] == 20 * len(platform.llm.calls)


async def test_a_minimal_platform_account_is_scored_from_the_signals_on_the_task(platform: Platform) -> None:
    agent = platform.agent()
    result = await agent.execute({"type": "health_scan", "account_id": "min", "signals": HEALTHY}, TENANT)
    assert result["health_score"]["account_id"] == "min" and result["health_score"]["rag"] == "GREEN"
    assert ("page-min", round(result["health_score"]["score"], 2), "GREEN") in platform.notion.health_updates

    refused = await agent.execute({"type": "generate_qbr", "account_id": "min", "signals": AT_RISK}, TENANT)
    assert refused["error"] == "Account 'min' has no rep_email on record; cannot address the draft"
    platform.notion.accounts["min"]["rep_email"] = "rep@example.com"
    qbr = await agent.execute({"type": "generate_qbr", "account_id": "min", "signals": AT_RISK}, TENANT)
    assert "error" not in qbr, qbr
    assert qbr["qbr"]["roi_metrics"]["health_rag"] == "RED"  # scored from the task's signals
    assert qbr["qbr_page_id"] == "qbr-page-1" and platform.notion.qbr_pages[0][1] == "Minimal Co"


async def test_qbr_creates_one_platform_page_and_one_draft_across_reruns(platform: Platform) -> None:
    agent = platform.agent()
    task = {"type": "generate_qbr", "account_id": "healthy", "period": "Q4 2026"}
    first = await agent.execute(task, TENANT)
    second = await agent.execute(task, TENANT)
    [(qbr, account_name)] = platform.notion.qbr_pages
    assert account_name == "Company healthy" and qbr.period == "Q4 2026" and qbr.account_id == "healthy"
    assert first["qbr_page_id"] == second["qbr_page_id"] == "qbr-page-1"
    assert first["draft_id"] == second["draft_id"] == "gmail-draft-1" and len(platform.gmail.drafts) == 1


async def test_expansion_records_on_the_platform_and_hands_off_with_one_key(platform: Platform) -> None:
    agent = platform.agent()
    first = await agent.execute({"type": "check_expansion", "account_id": "grow"}, TENANT)
    second = await agent.execute({"type": "check_expansion", "account_id": "grow"}, TENANT)
    records = platform.notion.expansion_records
    assert len(records) == first["opportunities_found"] >= 2
    assert all(isinstance(r.evidence, str) and r.evidence == "; ".join(r.evidence_items) for r in records)
    assert first["notion_page_ids"] == second["notion_page_ids"]

    payloads = [task for task, _ in platform.sales.tasks]
    assert len(payloads) == 2 * first["dispatched_to_sales"]
    for payload in payloads:
        assert payload["type"] == "handle_expansion_opportunity" and isinstance(payload["evidence"], str)
        assert payload["idempotency_key"].startswith(f"handoff:grow:{payload['opportunity_type']}:")
    keys = [p["idempotency_key"] for p in payloads]
    assert keys[: len(keys) // 2] == keys[len(keys) // 2 :]  # the rerun carries the same keys
    assert [r["duplicate"] for r in second["sales_dispatch_results"]] == [True] * second["dispatched_to_sales"]
    assert all(context["tenant_id"] == "acme-tenant" for _, context in platform.sales.tasks)


async def test_adoption_report_drafts_through_the_platform_gmail(platform: Platform) -> None:
    result = await platform.agent().execute({"type": "track_feature_adoption", "account_id": "grow"}, TENANT)
    assert "error" not in result and result["draft_id"] == "gmail-draft-1"
    assert {c["schema"] for c in platform.llm.calls} == {"AdoptionInsights"}
    assert platform.gmail.sent == []


async def test_without_a_tenant_no_event_is_published_and_the_result_says_so(platform: Platform) -> None:
    result = await platform.agent().execute({"type": "health_scan"}, {})
    assert platform.bus.published == []
    [alert] = result["alerts"]
    assert alert["channels"]["event_bus"] is False and "tenant_id" in alert["errors"]["event_bus"]
    assert alert["channels"]["email_alert"] and alert["channels"]["chat_alert"]


# -- the three jobs ----------------------------------------------------------------------------------------------


async def test_the_three_jobs_run_on_the_platform_services(platform: Platform) -> None:
    platform.notion.accounts["late"] = account("late", AT_RISK, renews_in_days=40, contract_end_date="31/12/2026")
    agent = platform.agent()
    now = datetime.now(UTC)
    scheduler = CSMScheduler(agent, notion_csm=platform.notion, context={"tenant_id": "acme-tenant"}, clock=lambda: now)

    scan = await scheduler.run_job("csm_daily_health_scan")
    assert scan["status"] == "succeeded" and scan["alerts"] == 1 and platform.bus.published
    assert {page for page, _, _ in platform.notion.health_updates} >= {"page-healthy", "page-risk", "page-grow"}

    check = await scheduler.run_job("csm_daily_contract_check")
    assert check["status"] == "succeeded", check
    assert check["rechecked"] == 1 and check["qbrs"] == 1  # 'risk' renews in 20 days
    assert check["errors"] == [{"account_id": "late", "message": "contract_end_date='31/12/2026' is not a valid date"}]
    assert [qbr.trigger for qbr, _ in platform.notion.qbr_pages] == ["contract_proximity"]

    quarterly = await scheduler.run_job("csm_quarterly_qbr")
    assert quarterly["status"] == "succeeded" and quarterly["ok"] == 3 and quarterly["failed"] == 2
    assert sorted(qbr.account_id for qbr, _ in platform.notion.qbr_pages) == ["grow", "healthy", "risk", "risk"]
    assert platform.gmail.sent == [] and {c["temperature"] for c in platform.llm.calls} == {0.4}


# -- refusals and the seed's own check ---------------------------------------------------------------------------


class NotAStore:
    async def get_account(self, account_id: str) -> dict[str, Any]:
        return {}


class NoChat:
    async def post_text(self, text: str) -> None:
        return None


@pytest.mark.parametrize(
    ("argument", "service", "missing"),
    [
        ("notion_csm", NotAStore(), "'query_all_accounts'"),
        ("chat_service", NoChat(), "'post'"),
        ("gmail_service", object(), "'create_draft'"),
        ("event_bus", object(), "'publish'"),
        ("llm_service", NoChat(), "'complete'"),
        ("sales_agent", object(), "'execute'"),
    ],
)
def test_a_service_of_no_known_shape_is_refused_at_construction(argument: str, service: Any, missing: str) -> None:
    services: dict[str, Any] = {"llm_service": object(), argument: service}
    with pytest.raises(ServiceShapeError) as caught:
        CustomerSuccessAgent(registration(), **services)
    assert argument in str(caught.value) and missing in str(caught.value)


async def test_the_seed_llm_object_still_uses_the_offline_writer(platform: Platform) -> None:
    agent = platform.agent(llm_service=object())
    result = await agent.execute({"type": "generate_qbr", "account_id": "healthy"}, TENANT)
    assert "error" not in result and platform.llm.calls == []
    assert result["llm_usage"]["calls"] >= 1


# -- defects found from outside ----------------------------------------------------------------------------------


async def test_without_a_scorer_only_the_health_scan_fails(platform: Platform) -> None:
    agent = platform.agent(health_scorer=None)
    scan = await agent.execute({"type": "health_scan"}, TENANT)
    assert scan == {
        "task_type": "health_scan",
        "error": "CSMHealthScorer not configured",
        "confidence": "low",
        "partial": True,
    }
    for task in ({"type": "generate_qbr", "account_id": "risk"}, {"type": "check_expansion", "account_id": "grow"}):
        assert "error" not in await agent.execute(task, TENANT), task


async def test_a_malformed_field_that_is_not_a_signal_is_reported_and_the_account_scored(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    try:
        await store.upsert_accounts([account("lots", HEALTHY, arr="lots"), account("ok", HEALTHY)])
        agent = CustomerSuccessAgent(
            registration(),
            llm_service=ScriptedLLM(),
            health_scorer=CSMHealthScorer(),
            gmail_service=RecordingMail(),
            settings=CSMSettings(data_dir=tmp_path),
            store=store,
        )
        result = await agent.execute({"type": "health_scan"}, {})
        assert {s["account_id"] for s in result["health_scores"]} == {"lots", "ok"}
        [error] = result["errors"]
        assert error["account_id"] == "lots" and "arr='lots' is invalid" in error["message"]
    finally:
        await store.aclose()


async def test_collections_risk_applies_to_the_next_score(platform: Platform) -> None:
    agent = platform.agent()
    before = (await agent.execute({"type": "health_scan", "account_id": "healthy"}, TENANT))["health_score"]["score"]
    assert agent.receive_collections_risk("healthy", "red") == {
        "account_id": "healthy",
        "collections_risk": "RED",
        "applies_to": "next score",
    }
    red = (await agent.execute({"type": "health_scan", "account_id": "healthy"}, TENANT))["health_score"]["score"]
    assert red == pytest.approx(before * 0.90, abs=0.01)
    agent.receive_collections_risk("healthy", "CRITICAL")
    qbr = await agent.execute({"type": "generate_qbr", "account_id": "healthy", "period": "Q1 2027"}, TENANT)
    assert "error" not in qbr
    critical = (await agent.execute({"type": "health_scan", "account_id": "healthy"}, TENANT))["health_score"]["score"]
    assert critical == pytest.approx(before * 0.80, abs=0.01)
    with pytest.raises(ValueError, match="must be one of"):
        agent.receive_collections_risk("healthy", "purple")
