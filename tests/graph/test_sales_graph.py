from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from src.app.context import CSMContext
from src.app.graph.customer_success import build_customer_success_graph
from src.app.graph.sales import build_sales_graph
from tests.conftest import NOW
from tests.graph.test_task_subgraphs import EXPANSION_READY
from tests.support.fakes import HEALTHY, Fakes, make_account

sales = build_sales_graph()
customer_success = build_customer_success_graph()
RESULT_KEYS = {"task_type", "account_id", "opportunity_type", "opportunity_id", "draft_id", "confidence"}


def handoff(account_id: str = "a", opportunity_type: str = "seats", **extra: Any) -> dict[str, Any]:
    return {
        "type": "handle_expansion_opportunity",
        "account_id": account_id,
        "opportunity_type": opportunity_type,
        "evidence": ["99 of 100 seats active", "<script>alert(1)</script>"],
        "estimated_arr_impact": 12_000.0,
        "recommended_talk_track": "Lead with the seat headroom.",
        "confidence": "high",
        "reason": "CSM found seat pressure.",
        **extra,
    }


async def run(ctx: CSMContext, *handoffs: dict[str, Any]) -> list[dict[str, Any]]:
    return (await sales.ainvoke({"handoffs": list(handoffs)}, context=ctx))["sales_results"]


async def test_each_handoff_is_recorded_and_drafted_to_the_account_executive(fakes: Fakes, ctx: CSMContext) -> None:
    await ctx.store.upsert_accounts(
        [make_account("a", HEALTHY), make_account("b", HEALTHY, ae_email="ae-b@example.com")]
    )
    results = await run(ctx, handoff("a", "seats"), handoff("a", "module"), handoff("b", "integration"))
    assert len(results) == 3
    assert {(r["account_id"], r["opportunity_type"]) for r in results} == {
        ("a", "seats"),
        ("a", "module"),
        ("b", "integration"),
    }
    for result in results:
        assert RESULT_KEYS <= set(result) and result["confidence"] == "high" and result["opportunity_created"] is True
        assert result["recipient_role"] == "ae" and result["quarter"] == "Q4 2026"
    by_account = {r["account_id"]: r["recipient"] for r in results}
    assert by_account == {"a": "ae@example.com", "b": "ae-b@example.com"}
    stored = await fakes.store.list_opportunities(10)
    assert sorted(row.artifact_id for row in stored) == sorted(r["opportunity_id"] for r in results)
    drafts = fakes.mail.drafts
    assert len(drafts) == 3 and {kind for _, _, kind in drafts.values()} == {"ae_note"}
    message, account_id, _ = drafts["ae_note:a:seats:Q4 2026:draft"]
    assert (message.to, account_id) == ("ae@example.com", "a")
    assert "Lead with the seat headroom." in message.body_html and "CSM found seat pressure." in message.body_html
    assert "<script>" not in message.body_html and "&lt;script&gt;" in message.body_html
    audit = [e for e in await ctx.store.list_audit(limit=50) if e.artifact == "draft:ae_note"]
    assert len(audit) == 3 and {e.task_type for e in audit} == {"handle_expansion_opportunity"}


async def test_a_rerun_in_the_same_quarter_creates_no_duplicates(fakes: Fakes, ctx: CSMContext) -> None:
    await ctx.store.upsert_accounts([make_account("a", HEALTHY)])
    [first] = await run(ctx, handoff())
    [second] = await run(ctx, handoff(recommended_talk_track="A different pitch."))
    assert second["opportunity_id"] == first["opportunity_id"] and second["draft_id"] == first["draft_id"]
    assert (first["opportunity_created"], second["opportunity_created"]) == (True, False)
    assert len(await fakes.store.list_opportunities(10)) == 1
    assert len(fakes.mail.drafts) == 1


async def test_next_quarter_is_a_new_opportunity(fakes: Fakes, ctx: CSMContext) -> None:
    await ctx.store.upsert_accounts([make_account("a", HEALTHY)])
    [this_quarter] = await run(ctx, handoff())
    [next_quarter] = await run(replace(ctx, clock=lambda: NOW + timedelta(days=60)), handoff())
    assert (this_quarter["quarter"], next_quarter["quarter"]) == ("Q4 2026", "Q1 2027")
    assert next_quarter["opportunity_id"] != this_quarter["opportunity_id"] and next_quarter["opportunity_created"]
    assert len(fakes.mail.drafts) == 2


async def test_sales_converges_on_the_record_the_csm_side_saved(fakes: Fakes, ctx: CSMContext) -> None:
    ctx = replace(ctx, sales=None)
    await ctx.store.upsert_accounts([make_account("a", EXPANSION_READY)])
    csm = await customer_success.ainvoke({"task": {"type": "check_expansion", "account_id": "a"}}, context=ctx)
    assert csm["handoffs"] and csm["result"]["dispatched_to_sales"] == 0
    results = await sales.ainvoke({"handoffs": csm["handoffs"]}, context=ctx)
    ids = {r["opportunity_type"]: r["opportunity_id"] for r in results["sales_results"]}
    csm_ids = dict(
        zip(
            [o["opportunity_type"] for o in csm["result"]["opportunities"]],
            csm["result"]["notion_page_ids"],
            strict=True,
        )
    )
    assert ids and all(ids[kind] == csm_ids[kind] for kind in ids)
    assert not any(r["opportunity_created"] for r in results["sales_results"])
    assert len(await fakes.store.list_opportunities(10)) == len(csm_ids)


async def test_without_an_ae_the_note_goes_to_the_rep_and_the_result_says_so(fakes: Fakes, ctx: CSMContext) -> None:
    await ctx.store.upsert_accounts([make_account("a", HEALTHY, ae_email=None)])
    [result] = await run(ctx, handoff())
    assert result["recipient_role"] == "rep" and result["recipient"] == "rep@example.com"
    assert "No account executive on record" in result["notice"]
    [(message, _, _)] = fakes.mail.drafts.values()
    assert message.to == "rep@example.com" and "pass this to the right account executive" in message.body_html


async def test_the_recipient_never_comes_from_the_payload(fakes: Fakes, ctx: CSMContext) -> None:
    await ctx.store.upsert_accounts([make_account("a", HEALTHY)])
    [result] = await run(ctx, handoff(ae_email="attacker@evil.test", to="attacker@evil.test"))
    assert result["recipient"] == "ae@example.com"
    [(message, _, _)] = fakes.mail.drafts.values()
    assert message.to == "ae@example.com"


async def test_bad_handoffs_fail_open_and_the_rest_of_the_batch_is_handled(fakes: Fakes, ctx: CSMContext) -> None:
    await ctx.store.upsert_accounts(
        [make_account("a", HEALTHY), make_account("nobody", HEALTHY, rep_email=None, ae_email="")]
    )
    results = await run(
        ctx,
        handoff(opportunity_type="discount"),
        handoff("ghost"),
        handoff("nobody"),
        handoff("a", "module"),
    )
    by_key = {(r["account_id"], r["opportunity_type"]): r for r in results}
    invalid, missing, unaddressable = by_key[("a", "discount")], by_key[("ghost", "seats")], by_key[("nobody", "seats")]
    for failed in (invalid, missing, unaddressable):
        assert failed["partial"] is True and failed["confidence"] == "low" and "draft_id" not in failed
    assert "opportunity_type" in invalid["error"] and "Invalid hand-off payload" in invalid["error"]
    assert "'ghost' was not found" in missing["error"]
    assert "no ae_email or rep_email" in unaddressable["error"]
    assert by_key[("a", "module")]["draft_id"] and len(fakes.mail.drafts) == 1
    assert len(await fakes.store.list_opportunities(10)) == 1


async def test_no_handoffs_runs_nothing(fakes: Fakes, ctx: CSMContext) -> None:
    assert not await sales.ainvoke({"handoffs": []}, context=ctx)
    assert fakes.mail.drafts == {}
