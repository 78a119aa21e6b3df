"""Real LiteLLMService on a local OpenAI-compatible server through the agent, the scheduler and the CLI.

Every figure is checked against what the server answered (its `usage` blocks) and litellm's price list.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from src.app.agents.base import AgentRegistration
from src.app.agents.customer_success.agent import CustomerSuccessAgent
from src.app.agents.customer_success.scheduler import CSMScheduler
from src.app.analysis.health import CSMHealthScorer
from src.app.config import CSMSettings
from src.app.data.sample_book import load_sample_book
from src.app.schemas import QBRNarrative
from src.app.tools.llm import LLMService
from src.app.tools.llm.litellm_service import LiteLLMService, load_litellm
from src.app.tools.llm.parsing import parse_model
from src.app.tools.store.sql import SQLStore
from tests.support.fakes import RecordingChat, RecordingEvents, RecordingMail, ScriptedLLM
from tests.support.openai_server import LoggedRequest, OpenAIServer

litellm = load_litellm()

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
KEY = "sk-local-run-key"
MODEL = "gpt-4o-mini"
PRICE = litellm.model_cost[MODEL]


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLStore]:
    book = SQLStore(f"sqlite:///{tmp_path / 'runs.sqlite'}")
    await book.upsert_accounts(load_sample_book(today=NOW.date())[:24])
    yield book
    await book.aclose()


def real_llm(server: OpenAIServer, **options: Any) -> LiteLLMService:
    settings: dict[str, Any] = {"api_base": server.url, "api_key": SecretStr(KEY), "retry_wait_s": 0, **options}
    return LiteLLMService(model=f"openai/{MODEL}", **settings)


def agent_for(llm: LLMService, store: SQLStore, tmp_path: Path, mail: RecordingMail | None = None) -> Any:
    return CustomerSuccessAgent(
        AgentRegistration(agent_id="csm-llm", name="CustomerSuccess", version="1.0", capabilities=[]),
        llm_service=llm,
        health_scorer=CSMHealthScorer(),
        gmail_service=mail or RecordingMail(),
        chat_service=RecordingChat(),
        event_bus=RecordingEvents(),
        settings=CSMSettings(data_dir=tmp_path / "data", _env_file=None),
        store=store,
    )


def billed(requests: list[LoggedRequest]) -> dict[str, Any]:
    """What the usage block must say for these requests: answered completions, their tokens, litellm's price."""
    usages = [request.reply["usage"] for request in requests if request.status == 200]
    prompt = sum(usage["prompt_tokens"] for usage in usages)
    completion = sum(usage["completion_tokens"] for usage in usages)
    cost = sum(
        usage["prompt_tokens"] * PRICE["input_cost_per_token"]
        + usage["completion_tokens"] * PRICE["output_cost_per_token"]
        for usage in usages
    )
    totals = {
        "calls": len(usages),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost_usd": round(cost, 6),
    }
    return {**totals, "by_model": {MODEL: totals} if usages else {}}


def schema_of(request: LoggedRequest) -> str:
    return str(request.body["response_format"]["json_schema"]["name"])


@pytest.mark.parametrize(
    ("fault", "statuses"),
    [
        (None, [200]),
        ("prose_json", [200]),  # JSON wrapped in prose still parses: one call
        ("empty_content", [200, 200]),  # an empty reply costs one repair round
        ("rate_limit", [429, 200]),  # a retried 429 is a second hit but not a second billed call
    ],
)
async def test_a_full_qbr_through_the_agent_on_the_local_server(
    server: OpenAIServer, store: SQLStore, tmp_path: Path, fault: Any, statuses: list[int]
) -> None:
    server.fault_retry_after_s = 0.01
    if fault:
        server.script(fault)
    mail = RecordingMail()
    agent = agent_for(real_llm(server), store, tmp_path, mail)
    result = await agent.execute({"type": "generate_qbr", "account_id": "acct-0003"}, {})
    assert "error" not in result and result["qbr_page_id"] and result["draft_id"]
    assert server.statuses() == statuses
    answered = server.requests[-1]
    assert schema_of(answered) == "QBRNarrative" and answered.headers["Authorization"] == f"Bearer {KEY}"
    narrative = parse_model(answered.reply["choices"][0]["message"]["content"], QBRNarrative)
    assert result["qbr"]["health_summary"] == narrative.health_summary
    [(message, account_id, kind)] = mail.drafts.values()
    assert (account_id, kind) == ("acct-0003", "qbr") and narrative.health_summary in (message.body_text or "")
    assert result["llm_usage"] == billed(server.requests)
    assert result["llm_usage"]["cost_usd"] > 0


async def test_scripted_replies_with_known_usage_add_up_per_task(store: SQLStore, tmp_path: Path) -> None:
    llm = ScriptedLLM({"QBRNarrative": ["no JSON here", json.dumps({"health_summary": "Fine."})]})
    agent = agent_for(llm, store, tmp_path)
    qbr = await agent.execute({"type": "generate_qbr", "account_id": "acct-0003"}, {})
    adoption = await agent.execute({"type": "track_feature_adoption", "account_id": "acct-0004"}, {})
    assert [name for name, _ in llm.calls] == ["QBRNarrative", "QBRNarrative", "AdoptionInsights"]
    assert qbr["llm_usage"] == {
        "calls": 2,
        "prompt_tokens": 22,
        "completion_tokens": 14,
        "total_tokens": 36,
        "cost_usd": 0.0,
        "by_model": {
            "scripted": {"calls": 2, "prompt_tokens": 22, "completion_tokens": 14, "total_tokens": 36, "cost_usd": 0.0}
        },
    }
    assert (adoption["llm_usage"]["calls"], adoption["llm_usage"]["prompt_tokens"]) == (1, 11)


async def test_two_overlapping_tasks_are_billed_to_their_own_results(store: SQLStore, tmp_path: Path) -> None:
    latency = 0.5  # each reply takes this long, so requests less than `latency` apart were in flight together
    with OpenAIServer(latency_s=latency) as slow:
        agent = agent_for(real_llm(slow, concurrency=8), store, tmp_path)
        scan, qbr = await asyncio.gather(
            agent.execute({"type": "health_scan"}, {}),
            agent.execute({"type": "generate_qbr", "account_id": "acct-0005"}, {}),
        )
    churn = [request for request in slow.requests if schema_of(request) == "ChurnNarrative"]
    qbrs = [request for request in slow.requests if schema_of(request) == "QBRNarrative"]
    assert churn and len(qbrs) == 1
    assert any(abs(request.received_at - qbrs[0].received_at) < latency for request in churn)
    assert scan["llm_usage"] == billed(churn) and scan["llm_usage"]["calls"] == scan["alerts_dispatched"]
    assert qbr["llm_usage"] == billed(qbrs)


async def test_scheduled_runs_store_their_usage_with_the_run(
    server: OpenAIServer, store: SQLStore, tmp_path: Path
) -> None:
    agent = agent_for(real_llm(server), store, tmp_path)
    scheduler = CSMScheduler(agent, store=store, clock=lambda: NOW, owner="t", qbr_concurrency=4)
    scan = await scheduler.run_job("csm_daily_health_scan")
    scan_requests = list(server.requests)
    quarterly = await scheduler.run_job("csm_quarterly_qbr")
    qbr_requests = server.requests[len(scan_requests) :]
    runs = {run.job_id: run.summary or {} for run in await store.list_runs()}
    assert scan["status"] == quarterly["status"] == "succeeded"
    assert runs["csm_daily_health_scan"]["llm_usage"] == billed(scan_requests) == scan["llm_usage"]
    assert runs["csm_quarterly_qbr"]["llm_usage"] == billed(qbr_requests)
    assert billed(qbr_requests)["calls"] == quarterly["ok"] == 24


def run_csm(*args: str, data_dir: Path, server: OpenAIServer) -> dict[str, Any]:
    env = {
        **os.environ,
        "CSM_DATA_DIR": str(data_dir),
        "CSM_LLM_MODEL": f"openai/{MODEL}",
        "CSM_LLM_API_BASE": server.url,
        "CSM_LLM_API_KEY": KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    done = subprocess.run(
        [sys.executable, "-c", "from src.app.cli import main; main()", *args, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert KEY not in done.stdout + done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def test_csm_demo_and_scan_report_the_llm_usage_of_a_configured_model(server: OpenAIServer, tmp_path: Path) -> None:
    demo = run_csm("demo", "--data-dir", str(tmp_path / "demo"), data_dir=tmp_path, server=server)
    assert demo["failed_tasks"] == [] and demo["llm_usage"] == billed(server.requests)
    assert demo["llm_usage"]["calls"] >= 5 + 5 + 5 and demo["llm_usage"]["cost_usd"] > 0
    before = len(server.requests)
    scan = run_csm("scan", "--data-dir", str(tmp_path / "scan"), data_dir=tmp_path, server=server)
    assert scan["llm_usage"] == billed(server.requests[before:]) and scan["llm_usage"]["calls"] >= 1
