from __future__ import annotations

import json
import operator
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from src.app.config import CSMSettings
from src.app.context import CSMContext, aclose_clients, embedded_context
from src.app.graph import customer_success
from src.app.graph.supervisor import build_supervisor_graph
from src.app.tools.llm.litellm_service import LiteLLMService
from src.app.tools.store.sql import SQLStore
from tests.graph.test_task_subgraphs import EXPANSION_READY
from tests.support.fakes import AT_RISK, HEALTHY, Fakes, ScriptedLLM, make_account

supervisor = build_supervisor_graph()
ROOT = Path(__file__).resolve().parents[2]


def route(task_type: str, account_hint: str | None = None) -> ScriptedLLM:
    return ScriptedLLM({"SupervisorRoute": [json.dumps({"task_type": task_type, "account_hint": account_hint})]})


async def ask(ctx: CSMContext, request: dict[str, Any] | str) -> dict[str, Any]:
    return await supervisor.ainvoke({"request": request}, context=ctx)


async def test_task_dicts_go_to_the_customer_success_graph(ctx: CSMContext) -> None:
    await ctx.store.upsert_accounts([make_account("a", HEALTHY), make_account("b", AT_RISK)])
    out = await ask(ctx, {"type": "health_scan"})
    assert out["delegate"] == "customer_success" and out["task"] == {"type": "health_scan"}
    assert out["result"]["task_type"] == "health_scan" and out["result"]["scanned_count"] == 2
    assert out["handoffs"] == [] and out["sales_results"] == []


async def test_the_sales_task_goes_to_the_sales_graph(ctx: CSMContext) -> None:
    await ctx.store.upsert_accounts([make_account("a", HEALTHY)])
    payload = {
        "type": "handle_expansion_opportunity",
        "account_id": "a",
        "opportunity_type": "integration",
        "evidence": ["asked for a HubSpot sync"],
        "estimated_arr_impact": 6000,
        "recommended_talk_track": "Scope the sync.",
        "confidence": "high",
    }
    out = await ask(ctx, payload)
    assert out["delegate"] == "sales" and out["result"] == {}
    [result] = out["sales_results"]
    assert (result["account_id"], result["opportunity_type"], result["confidence"]) == ("a", "integration", "high")
    assert result["reason"] == "Requested directly through the supervisor." and result["draft_id"]


async def test_unknown_task_types_are_rejected_naming_the_type(ctx: CSMContext) -> None:
    with pytest.raises(ValueError, match="Unknown task type: 'renew_contract'"):
        await ask(ctx, {"type": "renew_contract"})
    with pytest.raises(ValueError, match="request is empty"):
        await ask(ctx, "   ")


async def test_check_expansion_crosses_the_handoff_edge_to_sales_once(fakes: Fakes, ctx: CSMContext) -> None:
    ctx = replace(ctx, sales=None)  # no in-process executor: the graph edge carries the hand-off
    await ctx.store.upsert_accounts([make_account("a", EXPANSION_READY)])
    out = await ask(ctx, {"type": "check_expansion", "account_id": "a"})
    assert out["result"]["dispatched_to_sales"] == 0
    handed = {h["opportunity_type"]: h for h in out["handoffs"]}
    expected = {o["opportunity_type"] for o in out["result"]["opportunities"] if o["confidence"] != "low"}
    assert set(handed) == expected and len(handed) >= 2
    for record in handed.values():
        assert record["type"] == "handle_expansion_opportunity" and record["evidence"]
        assert record["reason"].startswith("The CSM agent's expansion check found")
    results = {r["opportunity_type"]: r for r in out["sales_results"]}
    assert set(results) == expected and all(r["recipient"] == "ae@example.com" for r in results.values())
    page_ids = dict(
        zip(
            [o["opportunity_type"] for o in out["result"]["opportunities"]],
            out["result"]["notion_page_ids"],
            strict=True,
        )
    )
    assert all(results[kind]["opportunity_id"] == page_ids[kind] for kind in expected)
    rerun = await ask(ctx, {"type": "check_expansion", "account_id": "a"})
    assert [r["draft_id"] for r in rerun["sales_results"]] == [r["draft_id"] for r in out["sales_results"]]
    assert len(await fakes.store.list_opportunities(10)) == len(out["result"]["opportunities"])
    ae_notes = [kind for _, _, kind in fakes.mail.drafts.values() if kind == "ae_note"]
    assert len(ae_notes) == len(expected)


async def test_an_injected_sales_executor_is_used_instead_of_the_edge(fakes: Fakes, ctx: CSMContext) -> None:
    await ctx.store.upsert_accounts([make_account("a", EXPANSION_READY)])
    out = await ask(ctx, {"type": "check_expansion", "account_id": "a"})
    assert out["result"]["dispatched_to_sales"] == len(fakes.sales.tasks) >= 2
    assert out["handoffs"] == [] and out["sales_results"] == []


async def test_text_requests_are_routed_by_the_llm_and_the_account_resolved_in_the_store(ctx: CSMContext) -> None:
    await ctx.store.upsert_accounts([make_account("acct-1", HEALTHY, name="Acme Corp")])
    llm = route("generate_qbr", "acme corp")
    out = await ask(replace(ctx, llm=llm), "Prepare the QBR for Acme Corp")
    assert out["task"] == {"type": "generate_qbr", "account_id": "acct-1"} and out["delegate"] == "customer_success"
    assert out["result"]["qbr"]["account_id"] == "acct-1"
    [(schema, messages)] = [call for call in llm.calls if call[0] == "SupervisorRoute"]
    assert "<facts>" in messages[-1]["content"] and "Prepare the QBR for Acme Corp" in messages[-1]["content"]


async def test_a_text_sales_request_runs_check_expansion_whose_handoffs_reach_sales(ctx: CSMContext) -> None:
    ctx = replace(ctx, sales=None, llm=route("handle_expansion_opportunity", "company A"))
    await ctx.store.upsert_accounts([make_account("a", EXPANSION_READY), make_account("b", HEALTHY)])
    out = await ask(ctx, "Hand off Company A's expansion to the account executive")
    assert out["task"] == {"type": "check_expansion", "account_id": "a"}
    assert out["sales_results"] and all(r["account_id"] == "a" for r in out["sales_results"])


@pytest.mark.parametrize(
    ("llm", "error", "problem"),
    [
        (route("check_expansion", "Initech"), ValueError, "No account matches 'Initech'"),
        (route("check_expansion", "Company"), ValueError, "'Company' matches 2 accounts"),
        (route("track_feature_adoption", None), ValueError, "names no account"),
        (ScriptedLLM({"SupervisorRoute": ['{"task_type": "renew_contract"}']}), RuntimeError, "No usable LLM output"),
    ],
)
async def test_text_requests_that_cannot_be_resolved_fail_clearly(
    fakes: Fakes, ctx: CSMContext, llm: ScriptedLLM, error: type[Exception], problem: str
) -> None:
    await ctx.store.upsert_accounts([make_account("a", HEALTHY), make_account("b", HEALTHY)])
    with pytest.raises(error, match=problem):
        await ask(replace(ctx, llm=llm), "do something for someone")
    assert fakes.mail.drafts == {}


async def test_the_offline_writer_routes_text_requests_by_keywords(ctx: CSMContext) -> None:
    ctx = replace(ctx, llm=LiteLLMService(model="offline/csm"))
    await ctx.store.upsert_accounts([make_account("acct-001", HEALTHY, name="Acme"), make_account("acct-002", AT_RISK)])
    qbr = await ask(ctx, "Prepare the QBR for Acme")
    assert qbr["task"] == {"type": "generate_qbr", "account_id": "acct-001"}
    assert qbr["result"]["qbr"]["account_id"] == "acct-001"
    scan = await ask(ctx, "How does churn risk look across the book?")
    assert scan["task"] == {"type": "health_scan"} and scan["result"]["scanned_count"] == 2
    adoption = await ask(ctx, "feature adoption report on acct-002 please")
    assert adoption["task"] == {"type": "track_feature_adoption", "account_id": "acct-002"}


async def test_a_thread_does_not_carry_handoffs_into_its_next_run(ctx: CSMContext) -> None:
    ctx = replace(ctx, sales=None)
    await ctx.store.upsert_accounts([make_account("a", EXPANSION_READY)])
    config = {"configurable": {"thread_id": "t-1"}}
    checkpointed = build_supervisor_graph(checkpointer=InMemorySaver())
    first = await checkpointed.ainvoke({"request": {"type": "check_expansion", "account_id": "a"}}, config, context=ctx)
    assert first["handoffs"] and first["sales_results"]
    second = await checkpointed.ainvoke({"request": {"type": "health_scan"}}, config, context=ctx)
    assert second["handoffs"] == [] and second["sales_results"] == [] and second["result"]["task_type"] == "health_scan"
    alone = customer_success.build_customer_success_graph(checkpointer=InMemorySaver())
    await alone.ainvoke({"task": {"type": "check_expansion", "account_id": "a"}}, config, context=ctx)
    after = await alone.ainvoke({"task": {"type": "health_scan"}}, config, context=ctx)
    assert after["handoffs"] == []


class PlatformState(TypedDict, total=False):
    task: dict[str, Any]
    result: dict[str, Any]
    handoffs: list[dict[str, Any]]
    log: Annotated[list[str], operator.add]


async def test_a_third_party_supervisor_can_embed_the_compiled_csm_graph(ctx: CSMContext) -> None:
    ctx = replace(ctx, sales=None)
    await ctx.store.upsert_accounts([make_account("a", EXPANSION_READY)])

    def intake(state: PlatformState) -> dict[str, Any]:
        return {"log": [f"intake:{state['task']['type']}"]}

    def wrap_up(state: PlatformState) -> dict[str, Any]:
        return {"log": [f"done:{state['result']['task_type']}:{len(state.get('handoffs', []))} hand-offs"]}

    builder = StateGraph(PlatformState, context_schema=CSMContext)
    builder.add_node("intake", intake)
    builder.add_node("csm", customer_success.graph)  # the compiled graph langgraph.json exposes, as is
    builder.add_node("wrap_up", wrap_up)
    builder.add_edge(START, "intake")
    builder.add_edge("intake", "csm")
    builder.add_edge("csm", "wrap_up")
    builder.add_edge("wrap_up", END)
    platform = builder.compile()
    out = await platform.ainvoke(
        {"task": {"type": "check_expansion", "account_id": "a"}, "log": ["start"]}, context=ctx
    )
    handoffs = len(out["handoffs"])
    assert handoffs >= 2 and out["result"]["opportunities_found"] >= handoffs
    assert out["log"] == ["start", "intake:check_expansion", f"done:check_expansion:{handoffs} hand-offs"]


@pytest.fixture
def studio_like_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A process with no injected context: settings from the environment, as under `langgraph dev`."""
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    for name in [name for name in os.environ if name.startswith("CSM_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CSM_DATA_DIR", str(tmp_path / "studio-data"))
    embedded_context.cache_clear()
    yield tmp_path / "studio-data"
    embedded_context.cache_clear()


async def test_graphs_run_without_a_context_on_the_embedded_defaults(studio_like_process: Path) -> None:
    settings = CSMSettings()
    store = SQLStore(settings.resolved_database_url)
    await store.upsert_accounts([make_account("a", HEALTHY), make_account("b", AT_RISK, renews_in_days=20)])
    await store.aclose()
    out = await supervisor.ainvoke({"request": {"type": "health_scan"}}, context={})  # what `langgraph dev` passes
    assert {s["account_id"] for s in out["result"]["health_scores"]} == {"a", "b"}
    assert out["result"]["alerts_dispatched"] == 1 and list((studio_like_process / "outbox" / "drafts").glob("*.eml"))
    assert CSMContext().store is embedded_context().store  # built once per process, on first use
    await aclose_clients(embedded_context())


def test_a_partial_context_is_refused(ctx: CSMContext) -> None:
    with pytest.raises(TypeError, match="every client or none; missing"):
        CSMContext(store=ctx.store, llm=ctx.llm)


def test_docs_show_the_current_graphs() -> None:
    from scripts.render_graphs import OUTPUT, render_markdown

    assert OUTPUT.read_text(encoding="utf-8") == render_markdown(), "run: python scripts/render_graphs.py"
    assert "customer_success\\3a__end__ -.-> sales" in render_markdown()  # the hand-off edge is drawn


def test_langgraph_json_exposes_the_three_module_level_graphs() -> None:
    config = json.loads((ROOT / "langgraph.json").read_text(encoding="utf-8"))
    paths = {name: spec["path"] for name, spec in config["graphs"].items()}
    assert paths == {
        "customer_success": "./src/app/graph/customer_success.py:graph",
        "sales": "./src/app/graph/sales.py:graph",
        "supervisor": "./src/app/graph/supervisor.py:graph",
    }
