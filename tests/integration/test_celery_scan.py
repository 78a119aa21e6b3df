"""The daily whole-book scan on three real Celery workers (RabbitMQ, PostgreSQL): page tasks, then one alert step.

One worker is SIGKILLed as soon as the first page has an outcome. Every active account ends with exactly one
score, the alerts respect the per-scan cap over the whole book, and the run's summary adds up the pages.
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
    purge_queue,
    redis_db_url,
)
from tests.support.openai_server import OpenAIServer
from tests.support.servers import redis_unavailable

pytestmark = pytest.mark.slow

ACCOUNTS = 1200
PAGE_SIZE = 100
MAX_ALERTS = 5
JOB = "csm_daily_health_scan"
LIMITS_DB = 13


def _seed(database_url: str) -> int:
    async def seed() -> int:
        store = SQLStore(database_url)
        try:
            accounts = generate_accounts(ACCOUNTS, as_of=datetime.now(UTC).date())
            for account in accounts:
                account["status"] = "active"
            await store.upsert_accounts(accounts)
            return len(await store.load_accounts())
        finally:
            await store.aclose()

    return asyncio.run(seed())


def test_a_whole_book_scan_runs_as_page_tasks_on_the_workers(postgres_url: str, tmp_path: Path) -> None:
    for reason in (broker_unavailable(RABBITMQ_URL), redis_unavailable()):
        if reason is not None:
            pytest.skip(reason)
    active = _seed(postgres_url)
    pages = -(-active // PAGE_SIZE)
    with OpenAIServer(latency_s=0.05) as server:
        env = cluster_env(
            broker_url=RABBITMQ_URL,
            database_url=postgres_url,
            data_dir=tmp_path / "data",
            llm_base=server.url,
            limits_url=redis_db_url(LIMITS_DB),
            requests_per_min=6000,
            rate_window_s=60,
            extra={"CSM_WORKER_SCAN_PAGE_SIZE": str(PAGE_SIZE), "CSM_MAX_ALERTS_PER_SCAN": str(MAX_ALERTS)},
        )
        purge_queue(env)
        cluster = Cluster(env, tmp_path)
        watch = RunWatch(postgres_url)
        try:
            victim, *_ = cluster.start(3, concurrency=2)
            sent = cluster.csm("scheduler", "--run-now", JOB, "--json")
            assert sent.returncode == 0, sent.stderr[-3000:]
            outcome = json.loads(sent.stdout.strip().splitlines()[-1])
            assert outcome["status"] == "dispatched", outcome
            assert outcome["pages"] == pages and outcome["sent"] == pages + 1

            deadline = time.monotonic() + 120
            while watch.recorded() < 1:
                assert time.monotonic() < deadline, "the workers made no progress"
                time.sleep(0.05)
            victim.kill()

            run = watch.wait_finished(JOB, timeout_s=240)
            scores, alerts = watch.counts("health_scores"), watch.counts("alerts")
        finally:
            cluster.stop()
            watch.close()

    assert run["status"] == "succeeded", run
    summary = run["summary"]
    tasks = outcome["pages"] + 1
    assert (summary["sent"], summary["ok"], summary["failed"], summary["skipped"]) == (tasks, tasks, 0, 0), summary.get(
        "errors"
    )
    assert summary["scanned"] == active
    assert summary["scored"] == len(scores) == active - summary["account_errors"]
    assert set(scores.values()) == {1}, "every account scored once, a redelivered page saved nothing twice"
    assert summary["alerts"] == len(alerts) == MAX_ALERTS and set(alerts.values()) == {1}
    assert summary["alerts_held_back"] > 0, "the cap applied to the whole book, not to each page"
    assert summary["llm_usage"]["calls"] >= MAX_ALERTS
    assert len(server.requests) == summary["llm_usage"]["calls"]
