"""The real `langgraph dev` server (LangGraph Studio's API) serving langgraph.json, driven with langgraph-sdk."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from langgraph_sdk import get_client

from src.app.tools.store.sql import SQLStore
from tests.graph.test_task_subgraphs import EXPANSION_READY
from tests.support.fakes import AT_RISK, HEALTHY, make_account
from tests.support.langgraph_dev import langgraph_dev

ACCOUNTS = [
    make_account("acct-ok", HEALTHY, name="Acme Analytics"),
    make_account("acct-risk", AT_RISK, name="Riverside Retail", renews_in_days=20),
    make_account("acct-grow", EXPANSION_READY, name="Growth Partners"),
]


async def _seed(database_url: str) -> None:
    store = SQLStore(database_url)
    await store.upsert_accounts(ACCOUNTS)
    await store.aclose()


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("langgraph-dev")
    data_dir = folder / "csm-data"
    asyncio.run(_seed(f"sqlite:///{data_dir / 'csm.sqlite'}"))
    with langgraph_dev(folder, {"CSM_DATA_DIR": str(data_dir)}) as url:
        yield url


async def test_customer_success_graph_runs_a_health_scan_over_http(dev_server: str) -> None:
    client = get_client(url=dev_server)
    assistants = await client.assistants.search()
    assert {assistant["graph_id"] for assistant in assistants} == {"customer_success", "sales", "supervisor"}
    for assistant in assistants:  # what Studio asks for to draw its forms: must not fail on our context class
        schemas = await client.assistants.get_schemas(assistant["assistant_id"])
        assert schemas["input_schema"]["properties"] and schemas["context_schema"]["properties"] == {}
    thread = await client.threads.create()
    state = await client.runs.wait(thread["thread_id"], "customer_success", input={"task": {"type": "health_scan"}})
    assert isinstance(state, dict), state
    result = state["result"]
    scores = {score["account_id"]: score for score in result["health_scores"]}
    assert result["task_type"] == "health_scan" and set(scores) == {"acct-ok", "acct-risk", "acct-grow"}
    assert scores["acct-ok"]["rag"] == "GREEN" and scores["acct-risk"]["rag"] == "RED"
    assert result["alerts_dispatched"] == 1 and result["confidence"] == "high"
    saved = await client.threads.get_state(thread["thread_id"])
    assert saved["values"]["result"]["scanned_count"] == 3


async def test_supervisor_routes_a_sentence_and_a_task_over_http(dev_server: str) -> None:
    client = get_client(url=dev_server)
    thread = await client.threads.create()
    request = "Hand off the expansion at Growth Partners to the account executive"
    state = await client.runs.wait(thread["thread_id"], "supervisor", input={"request": request})
    assert isinstance(state, dict), state
    assert state["delegate"] == "customer_success" and state["task"] == {
        "type": "check_expansion",
        "account_id": "acct-grow",
    }
    assert state["result"]["opportunities_found"] >= 2 and state["handoffs"]
    assert {r["opportunity_type"] for r in state["sales_results"]} == {h["opportunity_type"] for h in state["handoffs"]}
    assert all(r["recipient"] == "ae@example.com" and r["draft_id"] for r in state["sales_results"])

    scan = await client.runs.wait(thread["thread_id"], "supervisor", input={"request": {"type": "health_scan"}})
    assert isinstance(scan, dict), scan
    assert scan["delegate"] == "customer_success" and scan["result"]["scanned_count"] == 3
    assert scan["handoffs"] == [] and scan["sales_results"] == []  # nothing carried over on the same thread
