"""The real `langgraph dev` server (LangGraph Studio's API) serving langgraph.json, driven with langgraph-sdk."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from src.app.tools.store.sql import SQLStore
from tests.graph.test_task_subgraphs import EXPANSION_READY
from tests.support.fakes import AT_RISK, HEALTHY, make_account

ROOT = Path(__file__).resolve().parents[2]
LANGGRAPH = Path(sys.executable).parent / "langgraph"
START_TIMEOUT_S = 60
ACCOUNTS = [
    make_account("acct-ok", HEALTHY, name="Acme Analytics"),
    make_account("acct-risk", AT_RISK, name="Riverside Retail", renews_in_days=20),
    make_account("acct-grow", EXPANSION_READY, name="Growth Partners"),
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config_for(folder: Path) -> Path:
    """The repo's langgraph.json with absolute paths, so the server's state (.langgraph_api/) stays in `folder`."""
    config = json.loads((ROOT / "langgraph.json").read_text(encoding="utf-8"))
    config["dependencies"] = [str(ROOT)]
    for spec in config["graphs"].values():
        spec["path"] = str(ROOT / spec["path"])
    path = folder / "langgraph.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def _answers_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ok", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


async def _seed(database_url: str) -> None:
    store = SQLStore(database_url)
    await store.upsert_accounts(ACCOUNTS)
    await store.aclose()


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not LANGGRAPH.exists():
        pytest.skip(
            f"langgraph dev cannot start: {LANGGRAPH} is missing (install the dev extra: pip install -e '.[dev]')"
        )
    folder = tmp_path_factory.mktemp("langgraph-dev")
    data_dir = folder / "csm-data"
    asyncio.run(_seed(f"sqlite:///{data_dir / 'csm.sqlite'}"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSM_")}
    env.update(
        CSM_DATA_DIR=str(data_dir),
        LANGGRAPH_CLI_NO_ANALYTICS="1",
        LANGSMITH_TRACING="false",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    command = [str(LANGGRAPH), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(port)]
    log_path = folder / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [*command, "--config", str(_config_for(folder))],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers_ok(url):
            if server.poll() is not None or time.monotonic() > deadline:
                why = f"exited with code {server.returncode}" if server.poll() is not None else "never answered /ok"
                log_tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
                if "src/app" in log_tail or "GraphLoadError" in log_tail:
                    pytest.fail(f"langgraph dev could not load our graphs:\n{log_tail}")
                pytest.skip(f"langgraph dev cannot start here ({why} within {START_TIMEOUT_S} s):\n{log_tail}")
            time.sleep(0.25)
        yield url
    finally:
        _stop(server)


def _stop(server: subprocess.Popen[bytes]) -> None:
    """Terminate the server's whole process group, killing it if it does not exit in time."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=5)


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
