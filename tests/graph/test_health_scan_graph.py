from __future__ import annotations

import json
from dataclasses import replace

import pytest

from src.app.analysis.health import CSMHealthScorer
from src.app.analysis.signals import signals_from_record
from src.app.context import CSMContext
from src.app.graph.customer_success import build_customer_success_graph
from tests.conftest import NOW
from tests.support.fakes import AT_RISK, HEALTHY, Fakes, RecordingChat, ScriptedLLM, make_account

graph = build_customer_success_graph()


async def scan(ctx: CSMContext, **task: object) -> dict:
    out = await graph.ainvoke({"task": {"type": "health_scan", **task}}, context=ctx)
    return out["result"]


async def test_scan_scores_every_active_account_and_alerts_the_risky_one(fakes: Fakes, ctx: CSMContext) -> None:
    await ctx.store.upsert_accounts([make_account("a-ok", HEALTHY), make_account("a-risk", AT_RISK, renews_in_days=30)])
    result = await scan(ctx)
    by_id = {s["account_id"]: s for s in result["health_scores"]}
    assert set(by_id) == {"a-ok", "a-risk"}
    assert by_id["a-ok"]["rag"] == "GREEN" and by_id["a-risk"]["rag"] == "RED"
    assert by_id["a-risk"]["churn_triggered_by"] == "both"
    assert result["scanned_count"] == 2 and result["alerts_dispatched"] == 1
    assert result["confidence"] == "high" and result["errors"] == []
    [alert] = result["alerts"]
    assert alert["account_id"] == "a-risk"
    assert alert["channels"] == {"notion": True, "event_bus": True, "email_alert": True, "chat_alert": True}
    [(message, account_id, kind)] = fakes.mail.drafts.values()
    assert (message.to, account_id, kind) == ("rep@example.com", "a-risk", "churn_alert")
    assert "Scripted narrative." in message.body_html
    [(stream, event)] = fakes.events.events.values()
    assert stream == "churn_alerts" and event["alert_type"] == "csm_churn_alert"
    assert "a-risk" in await ctx.store.last_alerts(["a-risk"])


async def test_llm_is_asked_only_for_alerted_accounts_and_never_sees_emails(ctx: CSMContext, llm: ScriptedLLM) -> None:
    await ctx.store.upsert_accounts([make_account("a-ok", HEALTHY), make_account("a-risk", AT_RISK)])
    await scan(ctx)
    assert [name for name, _ in llm.calls] == ["ChurnNarrative"]
    prompt_text = " ".join(m["content"] for m in llm.calls[0][1])
    assert "Company a-risk" in prompt_text and "@example.com" not in prompt_text


async def test_scores_do_not_leak_between_accounts_in_one_scan(ctx: CSMContext) -> None:
    records = [make_account("a-ok", HEALTHY), make_account("a-risk", AT_RISK)]
    await ctx.store.upsert_accounts(records)
    result = await scan(ctx)
    scorer = CSMHealthScorer()
    for record, scored in zip(records, sorted(result["health_scores"], key=lambda s: s["account_id"]), strict=True):
        alone = scorer.score(signals_from_record(record, now=NOW, tz=ctx.settings.tz), record["account_id"])
        assert scored["score"] == alone.score
        assert scored["signal_breakdown"] == alone.signal_breakdown


async def test_alerts_are_capped_most_severe_first(ctx: CSMContext) -> None:
    mild = {**AT_RISK, "usage_trend": "stable", "login_frequency_days": 5}
    records = [make_account(f"r{i}", AT_RISK, renews_in_days=20) for i in range(4)]
    records += [make_account(f"m{i}", mild) for i in range(4)]
    await ctx.store.upsert_accounts(records)
    result = await scan(ctx)
    alerted = [a["account_id"] for a in result["alerts"]]
    assert len(alerted) == 5
    assert set(alerted[:4]) == {"r0", "r1", "r2", "r3"}


async def test_rerun_within_cooldown_raises_no_new_alert(fakes: Fakes, ctx: CSMContext) -> None:
    await ctx.store.upsert_accounts([make_account("a-risk", AT_RISK)])
    first = await scan(ctx)
    second = await scan(ctx)
    assert first["alerts_dispatched"] == 1 and second["alerts_dispatched"] == 0
    assert len(fakes.mail.drafts) == 1
    later = replace(ctx, clock=lambda: NOW.replace(day=24, month=12))
    assert (await scan(later))["alerts_dispatched"] == 1


async def test_one_failing_channel_does_not_stop_the_others(ctx: CSMContext) -> None:
    failing = replace(ctx, chat=RecordingChat(fail_with=ConnectionError("chat is down")))
    await ctx.store.upsert_accounts([make_account("a-risk", AT_RISK)])
    [alert] = (await scan(failing))["alerts"]
    assert alert["channels"] == {"notion": True, "event_bus": True, "email_alert": True, "chat_alert": False}
    assert "chat is down" in alert["errors"]["chat_alert"] and alert["alerts_sent"] == 3


async def test_llm_failure_still_alerts_with_a_deterministic_narrative(ctx: CSMContext, fakes: Fakes) -> None:
    broken = replace(ctx, llm=ScriptedLLM({"ChurnNarrative": [TimeoutError("llm timed out")]}))
    await ctx.store.upsert_accounts([make_account("a-risk", AT_RISK)])
    result = await scan(broken)
    assert result["alerts_dispatched"] == 1
    assert any(e["stage"] == "call_llm" and "llm timed out" in e["message"] for e in result["errors"])
    [(message, _, _)] = fakes.mail.drafts.values()
    assert "could not be generated" in message.body_text


async def test_bad_records_are_reported_and_good_ones_scored(ctx: CSMContext) -> None:
    sparse = {"usage_trend": "stable", "feature_adoption_rate": 0.5}  # 45 of 100 points: below the floor
    partial = {k: v for k, v in HEALTHY.items() if k not in ("stakeholder_engagement", "seats_utilization_rate")}
    await ctx.store.upsert_accounts(
        [
            make_account("good", HEALTHY),
            make_account("missing", sparse),
            make_account("partial", partial),
            make_account("absurd", {**HEALTHY, "feature_adoption_rate": 65}),
        ]
    )
    result = await scan(ctx)
    assert [s["account_id"] for s in result["health_scores"]] == ["good", "partial"]
    partial_score = result["health_scores"][1]
    assert partial_score["coverage"] == 0.9
    assert partial_score["missing_signals"] == ["seats_utilization_rate", "stakeholder_engagement"]
    messages = {e["account_id"]: e["message"] for e in result["errors"]}
    assert "is below the floor" in messages["missing"] and "invoice_payment_status" in messages["missing"]
    assert "feature_adoption_rate" in messages["absurd"] and "65" in messages["absurd"]
    assert result["confidence"] == "medium"
    assert set((await ctx.store.latest_scores()).keys()) == {"good", "partial"}
    assert (await ctx.store.latest_scores())["partial"].scorecard == ("default", "1")


async def test_previous_score_and_deltas_come_from_history(ctx: CSMContext) -> None:
    await ctx.store.upsert_accounts([make_account("a", HEALTHY)])
    await scan(ctx)
    await ctx.store.upsert_accounts([make_account("a", {**HEALTHY, "usage_trend": "declining"})])
    [score] = (await scan(ctx))["health_scores"]
    assert score["previous_score"] is not None and score["score"] < score["previous_score"]
    assert score["signal_deltas"] == {"usage_trend": -12.0}


async def test_focused_scan_passes_days_to_renewal_through(ctx: CSMContext) -> None:
    await ctx.store.upsert_accounts([make_account("a", AT_RISK, renews_in_days=300), make_account("b", HEALTHY)])
    result = await scan(ctx, account_ids=["a", "zz"], days_to_renewal={"a": 10})
    [score] = result["health_scores"]
    assert score["account_id"] == "a" and score["churn_triggered_by"] == "both"
    assert result["health_score"] == score
    assert any(e["account_id"] == "zz" and "not found" in e["message"] for e in result["errors"])


async def test_unknown_task_type_is_rejected_before_any_node_runs(ctx: CSMContext, llm: ScriptedLLM) -> None:
    with pytest.raises(ValueError, match="Unknown task type: 'send_email'"):
        await graph.ainvoke({"task": {"type": "send_email"}}, context=ctx)
    assert llm.calls == [] and await ctx.store.latest_scores() == {}


def test_graph_drawing_shows_router_and_four_subgraphs() -> None:
    mermaid = graph.get_graph(xray=1).draw_mermaid()
    for node in (
        "route_task",
        "health_scan",
        "generate_qbr",
        "check_expansion",
        "track_feature_adoption",
        "call_llm",
    ):
        assert node in mermaid


async def test_a_churn_narrative_quoting_a_number_not_among_the_facts_is_repaired(
    fakes: Fakes, ctx: CSMContext
) -> None:
    invented = {"churn_narrative": "Usage fell 73% and 412 tickets are open.", "recommended_actions": ["Call."]}
    clean = {"churn_narrative": "Usage is falling and logins are rare.", "recommended_actions": ["Call the sponsor."]}
    llm = ScriptedLLM({"ChurnNarrative": [json.dumps(invented), json.dumps(clean)]})
    await ctx.store.upsert_accounts([make_account("a-risk", AT_RISK, renews_in_days=30)])
    result = await scan(replace(ctx, llm=llm))
    assert [name for name, _ in llm.calls] == ["ChurnNarrative", "ChurnNarrative"]
    repair = llm.calls[1][1][-1]["content"]
    assert "not among the facts" in repair and "73%" in repair and "412" in repair
    [(message, _, _)] = fakes.mail.drafts.values()
    assert "Usage is falling" in message.body_text and "412" not in message.body_text
    assert result["errors"] == []


async def test_a_churn_narrative_that_keeps_inventing_numbers_gives_way_to_the_rules(
    fakes: Fakes, ctx: CSMContext
) -> None:
    invented = json.dumps({"churn_narrative": "Churn odds are 87%.", "recommended_actions": ["Call."]})
    llm = ScriptedLLM({"ChurnNarrative": [invented, invented, invented]})
    await ctx.store.upsert_accounts([make_account("a-risk", AT_RISK, renews_in_days=30)])
    result = await scan(replace(ctx, llm=llm))
    assert len(llm.calls) == 3
    [(message, _, _)] = fakes.mail.drafts.values()
    assert "87%" not in message.body_text and "could not be generated" in message.body_text
    assert any("not among the facts" in error["message"] for error in result["errors"])
