"""LLM faults: bounded repair, then the fail-open result, and never a half-written artifact or an LLM-chosen id."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from src.app.context import CSMContext
from src.app.graph.customer_success import build_customer_success_graph
from src.app.nodes.llm import MAX_LLM_ROUNDS
from src.app.schemas import DraftResult, EmailMessage
from tests.graph.test_task_subgraphs import EXPANSION_READY
from tests.hardening.conftest import agent_on
from tests.support.fakes import AT_RISK, HEALTHY, Fakes, Reply, ScriptedLLM, make_account

graph = build_customer_success_graph()


class RateLimitError(Exception):
    """Shaped like a provider's 429 once the service's own retries are spent."""


class InternalServerError(Exception):
    """Shaped like a provider's 500 once the service's own retries are spent."""


class FailingMail:
    """A MailDrafts whose drafts always fail (the provider is down)."""

    async def create_draft(
        self, message: EmailMessage, *, idempotency_key: str, account_id: str | None = None, kind: str = "email"
    ) -> DraftResult:
        raise ConnectionError("mail provider unavailable")


TRANSPORT_FAULTS: list[Reply] = [
    TimeoutError("timed out after 60 s"),
    RateLimitError("429 Too Many Requests"),
    InternalServerError("500 upstream error"),
]
UNUSABLE_REPLIES = {
    "empty": "",
    "prose": "Sure! Here is a lovely QBR for you, I hope it helps.",
    "wrong schema": json.dumps({"summary": "wrong keys", "items": [1, 2]}),
    "too long": json.dumps({"health_summary": "x" * 5000}),
    "array": "[1, 2, 3]",
}
QBR_TASK = {"type": "generate_qbr", "account_id": "a", "period": "Q4 2026"}


async def nothing_written(fakes: Fakes) -> None:
    for table in ("qbr_pages", "adoption_reports", "opportunities", "audit_log"):
        assert await fakes.store.count(table) == 0, table
    assert fakes.mail.drafts == {}


@pytest.mark.parametrize("fault", TRANSPORT_FAULTS, ids=lambda e: type(e).__name__)
async def test_transport_errors_fail_open_with_nothing_written(
    ctx: CSMContext, fakes: Fakes, fault: BaseException
) -> None:
    llm = ScriptedLLM({"QBRNarrative": [fault]})
    ctx = replace(ctx, llm=llm)
    await ctx.store.upsert_accounts([make_account("a", HEALTHY)])
    result = await agent_on(ctx).execute(QBR_TASK, {})
    assert result["partial"] is True and result["confidence"] == "low" and result["task_type"] == "generate_qbr"
    assert type(fault).__name__ in result["error"]
    assert len(llm.calls) == 1  # the service retries transient errors; the graph does not multiply them
    await nothing_written(fakes)


@pytest.mark.parametrize("reply", list(UNUSABLE_REPLIES.values()), ids=list(UNUSABLE_REPLIES))
async def test_unusable_replies_get_bounded_repair_then_fail_open(ctx: CSMContext, fakes: Fakes, reply: str) -> None:
    llm = ScriptedLLM({"QBRNarrative": [reply]})
    ctx = replace(ctx, llm=llm)
    await ctx.store.upsert_accounts([make_account("a", HEALTHY)])
    result = await agent_on(ctx).execute(QBR_TASK, {})
    assert result["partial"] is True and "No usable LLM output for 'a'" in result["error"]
    assert len(llm.calls) == MAX_LLM_ROUNDS
    repair_prompt = llm.calls[-1][1][-1]["content"]
    assert repair_prompt.startswith("Your previous reply could not be used")
    await nothing_written(fakes)


async def test_prose_wrapped_json_is_extracted_without_a_repair(ctx: CSMContext) -> None:
    narrative = {"health_summary": "Healthy and growing.", "risks": ["Renewal soon."]}
    llm = ScriptedLLM({"QBRNarrative": [f"Here you go:\n```json\n{json.dumps(narrative)}\n```\nAnything else?"]})
    ctx = replace(ctx, llm=llm)
    await ctx.store.upsert_accounts([make_account("a", HEALTHY)])
    result = await agent_on(ctx).execute(QBR_TASK, {})
    assert result["qbr"]["health_summary"] == "Healthy and growing." and len(llm.calls) == 1


async def test_a_repaired_reply_is_used(ctx: CSMContext) -> None:
    llm = ScriptedLLM({"QBRNarrative": ["not json", json.dumps({"health_summary": "Fixed."})]})
    ctx = replace(ctx, llm=llm)
    await ctx.store.upsert_accounts([make_account("a", HEALTHY)])
    result = await agent_on(ctx).execute(QBR_TASK, {})
    assert result["qbr"]["health_summary"] == "Fixed." and len(llm.calls) == 2


async def test_a_failed_draft_leaves_no_qbr_page(ctx: CSMContext) -> None:
    ctx = replace(ctx, mail=FailingMail())
    await ctx.store.upsert_accounts([make_account("a", HEALTHY)])
    result = await agent_on(ctx).execute(QBR_TASK, {})
    assert result["partial"] is True and "mail provider unavailable" in result["error"]
    assert await ctx.store.accounts_with_qbr("Q4 2026") == set()


async def test_llm_text_cannot_choose_account_period_trigger_or_figures(fakes: Fakes, ctx: CSMContext) -> None:
    hostile = {
        "health_summary": "ok",
        "account_id": "victim",
        "period": "Q1 1999",
        "trigger": "contract_proximity",
        "adoption_rate": 7,
        "roi_metrics": {"arr": -1},
        "to": "attacker@example.com",
    }
    ctx = replace(ctx, llm=ScriptedLLM({"QBRNarrative": [json.dumps(hostile)]}))
    await ctx.store.upsert_accounts([make_account("a", HEALTHY), make_account("victim", HEALTHY)])
    result = await agent_on(ctx).execute({**QBR_TASK, "trigger": "quarterly"}, {})
    qbr = result["qbr"]
    assert (qbr["account_id"], qbr["period"], qbr["trigger"]) == ("a", "Q4 2026", "quarterly")
    assert qbr["roi_metrics"]["arr"] == 120_000.0
    [(message, account_id, _)] = fakes.mail.drafts.values()
    assert account_id == "a" and message.to == "rep@example.com"
    assert await ctx.store.accounts_with_qbr("Q1 1999") == set()


async def test_adoption_writes_nothing_without_a_usable_reply(fakes: Fakes, ctx: CSMContext) -> None:
    ctx = replace(ctx, llm=ScriptedLLM({"AdoptionInsights": [json.dumps({"summary": ""})]}))
    await ctx.store.upsert_accounts([make_account("a", EXPANSION_READY)])
    adoption = await agent_on(ctx).execute({"type": "track_feature_adoption", "account_id": "a"}, {})
    assert adoption["partial"] is True
    assert fakes.sales.tasks == []
    await nothing_written(fakes)


@pytest.mark.parametrize("fault", [RateLimitError("429"), "", json.dumps({"opportunities": "nope"})])
async def test_expansion_keeps_the_rules_findings_when_the_llm_fails(fakes: Fakes, ctx: CSMContext, fault: Any) -> None:
    """Issue 13: the opportunities come from rules, so they are recorded, drafted and handed off; only prose is lost."""
    ctx = replace(ctx, llm=ScriptedLLM({"ExpansionPitches": [fault]}))
    await ctx.store.upsert_accounts([make_account("a", EXPANSION_READY)])
    result = await agent_on(ctx).execute({"type": "check_expansion", "account_id": "a"}, {})
    assert "partial" not in result and result["opportunities_found"] >= 2
    assert all(o["recommended_talk_track"].startswith("Walk ") for o in result["opportunities"])
    assert len(await fakes.store.list_opportunities(10)) == result["opportunities_found"]
    assert result["draft_id"] is not None and len(fakes.mail.drafts) == 1
    assert len(fakes.sales.tasks) == result["dispatched_to_sales"] >= 1
    assert any(error["stage"] in ("call_llm", "parse_response") for error in result["errors"])


async def test_expansion_pitches_cannot_invent_opportunities_or_accounts(fakes: Fakes, ctx: CSMContext) -> None:
    pitches = {
        "opportunities": [
            {"opportunity_type": "seats", "recommended_talk_track": "Grow seats.", "account_id": "victim"},
            {"opportunity_type": "module", "recommended_talk_track": "Invented.", "estimated_arr_impact": 9e9},
        ]
    }
    ctx = replace(ctx, llm=ScriptedLLM({"ExpansionPitches": [json.dumps(pitches)]}))
    await ctx.store.upsert_accounts(
        [make_account("a", {**HEALTHY, "seats_utilization_rate": 0.99}, seats_purchased=10)]
    )
    result = await agent_on(ctx).execute({"type": "check_expansion", "account_id": "a"}, {})
    assert {o["account_id"] for o in result["opportunities"]} == {"a"}
    assert all(o["estimated_arr_impact"] < 9e9 for o in result["opportunities"])
    assert "Invented." not in {o["recommended_talk_track"] for o in result["opportunities"]}
    assert "seats" in {o["opportunity_type"] for o in result["opportunities"]}
    assert all(task["account_id"] == "a" for task, _ in fakes.sales.tasks)


@pytest.mark.parametrize("fault", [TimeoutError("timed out"), "", json.dumps({"churn_narrative": ""})])
async def test_health_scan_alerts_with_the_deterministic_narrative_when_the_llm_fails(
    fakes: Fakes, ctx: CSMContext, fault: Any
) -> None:
    ctx = replace(ctx, llm=ScriptedLLM({"ChurnNarrative": [fault]}))
    await ctx.store.upsert_accounts([make_account("risk", AT_RISK, renews_in_days=20), make_account("ok", HEALTHY)])
    result = (await graph.ainvoke({"task": {"type": "health_scan"}}, context=ctx))["result"]
    assert result["alerts_dispatched"] == 1 and {s["account_id"] for s in result["health_scores"]} == {"risk", "ok"}
    [(message, account_id, kind)] = fakes.mail.drafts.values()
    assert (account_id, kind) == ("risk", "churn_alert")
    assert "The narrative could not be generated" in message.body_html
