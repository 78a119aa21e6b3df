from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from src.app.agents.base import AgentRegistration
from src.app.agents.customer_success.agent import CustomerSuccessAgent
from src.app.agents.sales import SalesAgent
from src.app.analysis.expansion import find_expansion_candidates
from src.app.analysis.health import CSMHealthScorer
from src.app.analysis.signals import AccountDataError, parse_account
from src.app.config import CSMSettings
from src.app.data.sample_book import load_sample_book
from src.app.tools.store.sql import SQLStore
from tests.graph.test_task_subgraphs import EXPANSION_READY
from tests.support.fakes import HEALTHY, RecordingMail, ScriptedLLM, make_account

PAYLOAD: dict[str, Any] = {
    "type": "handle_expansion_opportunity",
    "account_id": "a",
    "opportunity_type": "module",
    "evidence": ["exports used daily"],
    "estimated_arr_impact": 8_000.0,
    "recommended_talk_track": "Offer a workflows trial.",
    "confidence": "medium",
}


def registration(agent_id: str = "sales-test") -> AgentRegistration:
    return AgentRegistration(
        agent_id=agent_id, name="Sales", version="1.0", capabilities=["handle_expansion_opportunity"]
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLStore]:
    sql_store = SQLStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
    yield sql_store
    await sql_store.aclose()


def settings(tmp_path: Path) -> CSMSettings:
    return CSMSettings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]


async def test_unknown_task_types_raise_naming_the_type(tmp_path: Path) -> None:
    agent = SalesAgent(registration(), settings=settings(tmp_path))
    with pytest.raises(
        ValueError, match="Unknown task type: 'check_expansion'. Supported: handle_expansion_opportunity"
    ):
        await agent.execute({"type": "check_expansion"}, {})
    assert not (tmp_path / "data").exists()  # construction and rejection do no I/O


async def test_execute_records_the_opportunity_and_drafts_to_the_ae(tmp_path: Path, store: SQLStore) -> None:
    await store.upsert_accounts([make_account("a", HEALTHY)])
    mail = RecordingMail()
    agent = SalesAgent(registration(), gmail_service=mail, settings=settings(tmp_path), store=store)
    result = await agent.execute(dict(PAYLOAD), {"run_id": "r1"})
    assert {k: result[k] for k in ("task_type", "account_id", "opportunity_type", "confidence")} == {
        "task_type": "handle_expansion_opportunity",
        "account_id": "a",
        "opportunity_type": "module",
        "confidence": "medium",
    }
    [row] = await store.list_opportunities(10)
    assert (
        result["opportunity_id"] == row.artifact_id and row.content.recommended_talk_track == "Offer a workflows trial."
    )
    [(message, _, kind)] = mail.drafts.values()
    assert result["draft_id"] and (message.to, kind) == ("ae@example.com", "ae_note")
    assert await agent.invoke(dict(PAYLOAD)) == {**result, "opportunity_created": False}


async def test_failures_fail_open(tmp_path: Path, store: SQLStore) -> None:
    await store.upsert_accounts([make_account("a", HEALTHY)])
    agent = SalesAgent(registration(), gmail_service=RecordingMail(), settings=settings(tmp_path), store=store)
    invalid = await agent.execute({**PAYLOAD, "confidence": "certain"}, {})
    assert invalid["partial"] is True and invalid["confidence"] == "low" and "confidence" in invalid["error"]
    broken = SalesAgent(registration(), settings=settings(tmp_path), store=SQLStore(f"sqlite:///{tmp_path}"))
    failed = await broken.execute(dict(PAYLOAD), {})
    assert failed == {
        "task_type": "handle_expansion_opportunity",
        "error": failed["error"],
        "confidence": "low",
        "partial": True,
    }
    assert failed["error"]


def expansion_accounts(book: list[dict[str, Any]], count: int) -> list[str]:
    picked = []
    for record in book:
        try:
            account = parse_account(record)
        except AccountDataError:
            continue
        if account.status == "active" and any(c.confidence != "low" for c in find_expansion_candidates(account)):
            picked.append(account.account_id)
    return picked[:count]


async def test_check_expansion_on_the_sample_book_reaches_sales_once_per_quarter(
    tmp_path: Path, store: SQLStore
) -> None:
    book = load_sample_book(today=date.today())
    await store.upsert_accounts(book)
    config = settings(tmp_path)
    sales = SalesAgent(registration(), settings=config, store=store)
    csm = CustomerSuccessAgent(
        AgentRegistration(agent_id="csm", name="CustomerSuccess", version="1.0", capabilities=[]),
        llm_service=ScriptedLLM(),
        health_scorer=CSMHealthScorer(),
        sales_agent=sales,
        settings=config,
        store=store,
    )
    account_ids = expansion_accounts(book, 4)
    first = [await csm.execute({"type": "check_expansion", "account_id": a}, {}) for a in account_ids]
    handed = [r for result in first for r in result["sales_dispatch_results"]]
    assert len(handed) == sum(result["dispatched_to_sales"] for result in first) >= len(account_ids)
    assert all("error" not in r and r["recipient_role"] == "ae" for r in handed)
    opportunities = await store.list_opportunities(100)
    assert len(opportunities) == sum(result["opportunities_found"] for result in first)
    assert {r["opportunity_id"] for r in handed} <= {row.artifact_id for row in opportunities}
    ae_notes = [d for d in await store.list_drafts(limit=500) if d.kind == "ae_note"]
    ae_by_account = {r["account_id"]: r["ae_email"] for r in book}
    assert len(ae_notes) == len(handed) and all(d.to == ae_by_account[d.account_id] for d in ae_notes)
    eml_files = sorted((tmp_path / "data" / "outbox" / "drafts").glob("*.eml"))

    second = [await csm.execute({"type": "check_expansion", "account_id": a}, {}) for a in account_ids]
    assert [r["opportunity_id"] for s in second for r in s["sales_dispatch_results"]] == [
        r["opportunity_id"] for r in handed
    ]
    assert len(await store.list_opportunities(100)) == len(opportunities)
    assert len([d for d in await store.list_drafts(limit=500) if d.kind == "ae_note"]) == len(ae_notes)
    assert sorted((tmp_path / "data" / "outbox" / "drafts").glob("*.eml")) == eml_files


async def test_without_a_sales_agent_the_handoff_is_skipped_with_a_warning(tmp_path: Path, store: SQLStore) -> None:
    await store.upsert_accounts([make_account("a", EXPANSION_READY)])
    csm = CustomerSuccessAgent(
        AgentRegistration(agent_id="csm", name="CustomerSuccess", version="1.0", capabilities=[]),
        llm_service=ScriptedLLM(),
        gmail_service=RecordingMail(),
        health_scorer=CSMHealthScorer(),
        settings=settings(tmp_path),
        store=store,
    )
    with capture_logs() as logs:
        result = await csm.execute({"type": "check_expansion", "account_id": "a"}, {})
    assert result["opportunities_found"] >= 2 and result["dispatched_to_sales"] == 0
    [warning] = [e for e in logs if e["event"] == "sales_handoff_skipped"]
    assert warning["log_level"] == "warning" and warning["count"] == result["opportunities_found"]
    assert [d for d in await store.list_drafts() if d.kind == "ae_note"] == []
