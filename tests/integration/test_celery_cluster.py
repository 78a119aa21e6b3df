"""Past one machine: the quarterly QBR job on three real Celery workers, one SIGKILLed mid-run.

Both brokers (RabbitMQ, Redis), PostgreSQL for the store and checkpoints, the local OpenAI-compatible server with
a request cap every worker shares through Redis. Nothing lost, nothing twice, never over the cap.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from src.app.data.sample_book import generate_accounts
from src.app.tools.store.sql import SQLStore
from tests.support.celery_cluster import (
    RABBITMQ_URL,
    Cluster,
    RunWatch,
    broker_unavailable,
    cluster_env,
    max_in_window,
    purge_queue,
    redis_db_url,
)
from tests.support.openai_server import OpenAIServer
from tests.support.servers import redis_unavailable

pytestmark = pytest.mark.slow

ACCOUNTS = 180
WORKERS = 3
CONCURRENCY = 4
CAP_PER_WINDOW = 24
WINDOW_S = 2
LATENCY_S = 0.05
LIMITS_DB = 13
REDIS_BROKER_DB = 14


def _seed(database_url: str) -> list[str]:
    async def seed() -> list[str]:
        store = SQLStore(database_url)
        try:
            accounts = generate_accounts(ACCOUNTS, as_of=datetime.now(UTC).date())
            for account in accounts:
                account["status"] = "active"
            await store.upsert_accounts(accounts)
            return sorted(str(a["account_id"]) for a in await store.load_accounts())
        finally:
            await store.aclose()

    return asyncio.run(seed())


@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_quarterly_qbrs_survive_a_killed_worker(broker: str, postgres_url: str, tmp_path: Path) -> None:
    broker_url = RABBITMQ_URL if broker == "rabbitmq" else redis_db_url(REDIS_BROKER_DB)
    for reason in (broker_unavailable(broker_url), redis_unavailable()):
        if reason is not None:
            pytest.skip(reason)
    accounts = _seed(postgres_url)
    assert len(accounts) == ACCOUNTS
    with OpenAIServer(latency_s=LATENCY_S, rate_limit=CAP_PER_WINDOW, rate_window_s=WINDOW_S) as server:
        env = cluster_env(
            broker_url=broker_url,
            database_url=postgres_url,
            data_dir=tmp_path / "data",
            llm_base=server.url,
            limits_url=redis_db_url(LIMITS_DB),
            requests_per_min=CAP_PER_WINDOW * 60 / WINDOW_S,
            rate_window_s=WINDOW_S,
            extra={"CSM_BROKER_VISIBILITY_TIMEOUT_S": "10"},
        )
        purge_queue(env)
        cluster = Cluster(env, tmp_path)
        watch = RunWatch(postgres_url)
        try:
            victim, *_ = cluster.start(WORKERS, concurrency=CONCURRENCY)
            sent = cluster.csm("scheduler", "--run-now", "csm_quarterly_qbr", "--json")
            assert sent.returncode == 0, sent.stderr[-3000:]
            outcome = json.loads(sent.stdout.strip().splitlines()[-1])
            assert outcome["status"] == "dispatched" and outcome["sent"] == ACCOUNTS

            deadline = time.monotonic() + 120
            while watch.recorded() < ACCOUNTS // 4:  # a quarter done: the victim has tasks in flight
                assert time.monotonic() < deadline, "the workers made no progress"
                time.sleep(0.1)
            victim.kill()
            under_way = json.loads(cluster.csm("runs", "--json").stdout)["runs"][0]

            run = watch.wait_finished("csm_quarterly_qbr", timeout_s=240)
            progress = cluster.csm("runs", "--json")
            qbrs, drafts = watch.counts("qbr_pages"), watch.counts("drafts")
        finally:
            cluster.stop()
            watch.close()

    assert run["status"] == "succeeded", run
    summary = run["summary"]
    assert (summary["sent"], summary["ok"], summary["failed"], summary["skipped"]) == (ACCOUNTS, ACCOUNTS, 0, 0), (
        summary.get("errors")
    )
    assert qbrs == dict.fromkeys(accounts, 1), "every account has exactly one QBR"
    assert drafts == dict.fromkeys(accounts, 1), "every account has exactly one draft"
    assert '"status": "succeeded"' in progress.stdout
    assert under_way["status"] == "running", "three quarters of the run were still to go"
    counts = under_way["progress"]
    assert counts["sent"] == ACCOUNTS and counts["skipped"] == 0 and counts["failed"] == 0
    assert ACCOUNTS // 4 <= counts["finished"] < ACCOUNTS
    usage = summary["llm_usage"]
    (model_usage,) = usage["by_model"].values()  # one model, every worker's calls summed under it
    assert model_usage["calls"] == usage["calls"] and model_usage["total_tokens"] == usage["total_tokens"] > 0
    # Every reply is recorded on the run as it arrives, the killed worker's too: the run counts every call the
    # server answered but the killed worker's requests in flight (one per task thread at most).
    answered = server.statuses().count(200)
    assert ACCOUNTS <= usage["calls"] <= answered and usage["calls"] >= answered - CONCURRENCY, (usage, answered)

    statuses = server.statuses()
    assert len(statuses) >= ACCOUNTS
    assert set(statuses) <= {200, 499}, f"the server refused requests over its cap: {sorted(set(statuses))}"
    busiest = max_in_window([request.received_at for request in server.requests], WINDOW_S)
    assert busiest <= CAP_PER_WINDOW, f"{busiest} requests in one {WINDOW_S} s window, cap {CAP_PER_WINDOW}"
