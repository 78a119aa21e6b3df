from __future__ import annotations

import json
from dataclasses import replace

from src.app.context import CSMContext
from src.app.graph.customer_success import build_customer_success_graph
from tests.support.fakes import AT_RISK, HEALTHY, Fakes, ScriptedLLM, make_account

graph = build_customer_success_graph()

EXPANSION_READY = {
    **HEALTHY,
    "seats_purchased": 100,
    "seats_active": 99,
    "seats_utilization_rate": 0.99,
    "tickets": [
        {
            "subject": "Can you connect to Salesforce?",
            "body": "We need a Salesforce integration",
            "status": "open",
        },
        {"subject": "HubSpot sync", "body": "Is there an API or webhook for HubSpot?", "status": "open"},
    ],
    "features_available": ["dashboards", "reports", "exports", "workflows"],
    "feature_usage": {"dashboards": 900, "reports": 800, "exports": 700, "workflows": 5},
}


async def run(ctx: CSMContext, task: dict) -> dict:
    return (await graph.ainvoke({"task": task}, context=ctx))["result"]


async def test_qbr_saves_page_and_rep_draft_once_per_period(fakes: Fakes, ctx: CSMContext, llm: ScriptedLLM) -> None:
    await ctx.store.upsert_accounts([make_account("a", HEALTHY)])
    task = {"type": "generate_qbr", "account_id": "a", "period": "Q4 2026"}
    first = await run(ctx, task)
    assert first["task_type"] == "generate_qbr" and first["confidence"] == "high"
    assert first["qbr"]["account_id"] == "a" and first["qbr"]["period"] == "Q4 2026"
    assert first["qbr"]["trigger"] == "quarterly" and first["qbr"]["health_summary"] == "Scripted summary."
    assert "health_score" in first["qbr"]["roi_metrics"] or first["qbr"]["roi_metrics"]
    second = await run(ctx, task)
    assert second["qbr_page_id"] == first["qbr_page_id"] and second["created"] is False
    assert len(fakes.mail.drafts) == 1
    facts = llm.calls[0][1][1]["content"]
    assert "<facts>" in facts and "Q4 2026" in facts


async def test_llm_cannot_override_account_period_or_trigger(ctx: CSMContext) -> None:
    hostile = {
        "health_summary": "ok",
        "account_id": "other",
        "period": "Q1 1999",
        "trigger": "contract_proximity",
    }
    ctx = replace(ctx, llm=ScriptedLLM({"QBRNarrative": [json.dumps(hostile)]}))
    await ctx.store.upsert_accounts([make_account("a", HEALTHY)])
    result = await run(ctx, {"type": "generate_qbr", "account_id": "a", "period": "Q4 2026"})
    assert (result["qbr"]["account_id"], result["qbr"]["period"], result["qbr"]["trigger"]) == (
        "a",
        "Q4 2026",
        "quarterly",
    )


async def test_unparseable_reply_is_repaired_once(ctx: CSMContext) -> None:
    good = json.dumps({"summary": "Fine.", "recommendations": ["Turn on workflows."]})
    llm = ScriptedLLM({"AdoptionInsights": ["Sorry, I cannot help with JSON today.", good]})
    ctx = replace(ctx, llm=llm)
    await ctx.store.upsert_accounts([make_account("a", EXPANSION_READY)])
    result = await run(ctx, {"type": "track_feature_adoption", "account_id": "a"})
    assert len(llm.calls) == 2 and "could not be used" in llm.calls[1][1][-1]["content"]
    assert result["report"]["recommendations"] == ["Turn on workflows."]
    assert result["adoption_rate"] == result["report"]["adoption_rate"]
    assert result["underutilized_count"] == len(result["report"]["underutilized_features"]) >= 1
    assert result["draft_id"]


async def test_llm_failure_writes_nothing_and_raises_for_fail_open(fakes: Fakes, ctx: CSMContext) -> None:
    ctx = replace(ctx, llm=ScriptedLLM({"QBRNarrative": ["not json"]}))
    await ctx.store.upsert_accounts([make_account("a", HEALTHY)])
    try:
        await run(ctx, {"type": "generate_qbr", "account_id": "a"})
    except RuntimeError as error:
        assert "No usable LLM output for 'a'" in str(error)
    else:
        raise AssertionError("a QBR without a narrative must not be written")
    assert fakes.mail.drafts == {}
    assert await fakes.store.list_qbrs(10) == []


async def test_expansion_hands_off_non_low_opportunities_with_the_payload_keys(fakes: Fakes, ctx: CSMContext) -> None:
    await ctx.store.upsert_accounts([make_account("a", EXPANSION_READY)])
    result = await run(ctx, {"type": "check_expansion", "account_id": "a"})
    types = {o["opportunity_type"]: o for o in result["opportunities"]}
    assert "seats" in types and "integration" in types
    assert result["opportunities_found"] == len(result["opportunities"]) == len(result["notion_page_ids"])
    handed = [task for task, _ in fakes.sales.tasks]
    assert result["dispatched_to_sales"] == len(handed) == len(result["sales_dispatch_results"])
    assert {t["opportunity_type"] for t in handed} == {
        o["opportunity_type"] for o in result["opportunities"] if o["confidence"] != "low"
    }
    for payload in handed:
        assert set(payload) == {
            "type",
            "account_id",
            "opportunity_type",
            "evidence",
            "estimated_arr_impact",
            "recommended_talk_track",
            "confidence",
            "evidence_items",
            "idempotency_key",
        }
        assert isinstance(payload["evidence"], str) and payload["evidence"] == "; ".join(payload["evidence_items"])
        assert payload["idempotency_key"] == f"handoff:a:{payload['opportunity_type']}:Q4 2026"
        assert payload["type"] == "handle_expansion_opportunity" and payload["confidence"] != "low"
    assert types["seats"]["recommended_talk_track"] == "Scripted seats pitch."


async def test_expansion_without_sales_agent_skips_the_handoff(ctx: CSMContext) -> None:
    ctx = replace(ctx, sales=None)
    await ctx.store.upsert_accounts([make_account("a", EXPANSION_READY)])
    result = await run(ctx, {"type": "check_expansion", "account_id": "a"})
    assert result["opportunities_found"] >= 2 and result["dispatched_to_sales"] == 0
    assert result["sales_dispatch_results"] == []


async def test_expansion_rerun_in_same_quarter_creates_no_duplicates(fakes: Fakes, ctx: CSMContext) -> None:
    await ctx.store.upsert_accounts([make_account("a", EXPANSION_READY)])
    first = await run(ctx, {"type": "check_expansion", "account_id": "a"})
    second = await run(ctx, {"type": "check_expansion", "account_id": "a"})
    assert first["notion_page_ids"] == second["notion_page_ids"]
    assert len(await fakes.store.list_opportunities(100)) == first["opportunities_found"]


async def test_expansion_with_no_candidates_calls_no_llm(ctx: CSMContext, llm: ScriptedLLM) -> None:
    await ctx.store.upsert_accounts([make_account("a", AT_RISK, feature_usage={}, tickets=[])])
    result = await run(ctx, {"type": "check_expansion", "account_id": "a"})
    assert result["opportunities_found"] == 0 and result["dispatched_to_sales"] == 0
    assert llm.calls == []
