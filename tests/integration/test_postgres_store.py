"""The SQL store and the scheduler's leases on the machine's real PostgreSQL (the portable suite is tests/unit)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from src.app.agents.base import AgentRegistration
from src.app.agents.customer_success.agent import CustomerSuccessAgent
from src.app.agents.customer_success.scheduler import CSMScheduler
from src.app.analysis.health import CSMHealthScorer
from src.app.config import CSMSettings
from src.app.data.sample_book import load_sample_book
from src.app.tools.store.postgres import libpq_conninfo
from src.app.tools.store.sql import SQLStore
from tests.support.fakes import RecordingChat, RecordingEvents, RecordingMail, ScriptedLLM

NOW = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


def with_session_option(url: str, option: str) -> str:
    """`url` with one more libpq `-c` option for every session (e.g. a time zone)."""
    parsed = make_url(url)
    options = f"{parsed.query.get('options', '')} -c{option}".strip()
    return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_conninfo(url)) as connection:
        return connection.execute(sql).fetchall()  # type: ignore[arg-type]


async def test_tables_live_in_the_test_schema_and_ids_use_the_c_collation(postgres_url: str) -> None:
    store = SQLStore(postgres_url)
    await store.upsert_accounts([{"account_id": "a1", "name": "Acme"}])
    await store.aclose()

    rows = query(
        postgres_url,
        "SELECT table_name, collation_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND column_name = 'account_id' ORDER BY table_name",
    )

    assert [table for table, _ in rows] == [
        "account_health",
        "accounts",
        "adoption_reports",
        "alerts",
        "audit_log",
        "drafts",
        "feedback",
        "health_scores",
        "opportunities",
        "outbox",
        "qbr_pages",
        "run_tasks",
    ]
    assert {collation for _, collation in rows} == {"C"}


async def test_timestamps_are_absolute_and_read_back_in_utc_whatever_the_session_time_zone(postgres_url: str) -> None:
    auckland = SQLStore(with_session_option(postgres_url, "TimeZone=Pacific/Auckland"))
    moment = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)
    claim = await auckland.claim_run("job", "k", owner="a", lease_until=moment + timedelta(hours=2), now=moment)
    assert claim.run_id is not None
    await auckland.finish_run(claim.run_id, "succeeded", {"at": moment})

    [run] = await auckland.list_runs()
    await auckland.aclose()
    utc_text = query(with_session_option(postgres_url, "TimeZone=UTC"), "SELECT started_at::text FROM runs")

    assert run.started_at == moment and run.started_at.tzinfo is UTC
    assert run.lease_until == moment + timedelta(hours=2)
    assert run.summary == {"at": "2026-01-05T07:00:00Z"}
    assert utc_text == [("2026-01-05 07:00:00+00",)]


async def test_an_unreachable_server_fails_with_a_clear_error_and_no_password() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = SQLStore(f"postgresql+psycopg://csm:s3cret-pw@127.0.0.1:{port}/test?connect_timeout=2")

    with pytest.raises(OperationalError) as raised:
        await store.count("accounts")

    assert f"port {port} failed" in str(raised.value) and "s3cret-pw" not in str(raised.value)
    await store.aclose()


@pytest.fixture
async def agent_on_postgres(
    postgres_url: str, tmp_path: Path
) -> AsyncIterator[tuple[CustomerSuccessAgent, SQLStore, str]]:
    store = SQLStore(postgres_url)
    await store.upsert_accounts(load_sample_book(today=NOW.date())[:40])
    agent = CustomerSuccessAgent(
        AgentRegistration(agent_id="csm-pg", name="CustomerSuccess", version="1.0", capabilities=[]),
        llm_service=ScriptedLLM(),
        health_scorer=CSMHealthScorer(),
        gmail_service=RecordingMail(),
        chat_service=RecordingChat(),
        event_bus=RecordingEvents(),
        settings=CSMSettings(data_dir=tmp_path, database_url=postgres_url, _env_file=None),  # type: ignore[call-arg]
        store=store,
    )
    yield agent, store, postgres_url
    await store.aclose()


async def test_two_schedulers_on_separate_connections_run_an_occurrence_once(agent_on_postgres: Any) -> None:
    agent, store, url = agent_on_postgres
    stores = [store, SQLStore(url), SQLStore(url)]
    schedulers = [CSMScheduler(agent, store=one, clock=lambda: NOW, owner=f"host-{n}") for n, one in enumerate(stores)]

    outcomes = await asyncio.gather(*(s.run_job("csm_daily_health_scan") for s in schedulers))

    assert sorted(outcome["status"] for outcome in outcomes) == ["skipped", "skipped", "succeeded"]
    assert all("held by host-" in o["reason"] for o in outcomes if o["status"] == "skipped")
    [winner] = [outcome for outcome in outcomes if outcome["status"] == "succeeded"]
    [run] = await store.list_runs()
    assert run.status == "succeeded" and await store.count("health_scores") == winner["ok"] >= 30
    for extra in stores[1:]:
        await extra.aclose()


async def test_a_run_whose_holder_died_is_taken_over_after_its_lease(agent_on_postgres: Any) -> None:
    agent, store, url = agent_on_postgres
    other = SQLStore(url)
    lease_end = NOW + timedelta(hours=2)
    dead = await store.claim_run("csm_daily_health_scan", "2026-11-24", owner="dead", lease_until=lease_end, now=NOW)
    later = lease_end + timedelta(minutes=1)

    blocked = await CSMScheduler(agent, store=other, clock=lambda: NOW, owner="b").run_job("csm_daily_health_scan")
    resumed = await CSMScheduler(agent, store=other, clock=lambda: later, owner="b").run_job("csm_daily_health_scan")

    assert blocked["status"] == "skipped" and "held by dead" in blocked["reason"]
    assert resumed["status"] == "succeeded" and resumed["resumed"] is True
    [run] = await store.list_runs()
    assert (run.run_id, run.owner, run.attempts, run.status) == (dead.run_id, "b", 2, "succeeded")
    await other.aclose()
