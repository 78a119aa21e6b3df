"""Checkpointed agent runs on SQLite and PostgreSQL: deterministic threads, resumed runs, clean reruns."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from structlog.testing import capture_logs

from src.app.agents.base import AgentRegistration
from src.app.agents.customer_success.agent import CustomerSuccessAgent
from src.app.agents.customer_success.runs import CHECKPOINTED_TYPES, run_thread_id
from src.app.analysis.health import CSMHealthScorer
from src.app.config import CSMSettings
from src.app.context import CSMContext
from src.app.graph.customer_success import build_customer_success_graph
from src.app.schemas import DraftResult, EmailMessage
from src.app.tools.store.checkpoints import CheckpointerError, open_checkpointer
from src.app.tools.store.postgres import libpq_conninfo
from src.app.tools.store.sql import SQLStore
from tests.support.fakes import (
    AT_RISK,
    HEALTHY,
    RecordingChat,
    RecordingEvents,
    RecordingMail,
    ScriptedLLM,
    make_account,
)

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
QBR_TASK = {"type": "generate_qbr", "account_id": "acct-risk", "period": "Q4 2026", "trigger": "quarterly"}


class Killed(BaseException):
    """Stands in for the process dying mid-run: not an Exception, so the agent's fail-open does not catch it."""


class MailThatDiesOnce(RecordingMail):
    """Records drafts, but the process 'dies' on the first one."""

    def __init__(self) -> None:
        super().__init__()
        self.deaths = 0

    async def create_draft(self, message: EmailMessage, **kwargs: Any) -> DraftResult:
        if self.deaths == 0:
            self.deaths += 1
            raise Killed
        return await super().create_draft(message, **kwargs)


@dataclass
class Setup:
    settings: CSMSettings
    store: SQLStore
    checkpointer: BaseCheckpointSaver[str]
    llm: ScriptedLLM
    mail: RecordingMail

    def agent(self) -> CustomerSuccessAgent:
        return CustomerSuccessAgent(
            AgentRegistration(agent_id="csm-cp", name="CustomerSuccess", version="1.0", capabilities=[]),
            llm_service=self.llm,
            health_scorer=CSMHealthScorer(),
            gmail_service=self.mail,
            chat_service=RecordingChat(),
            event_bus=RecordingEvents(),
            settings=self.settings,
            store=self.store,
            checkpointer=self.checkpointer,
        )

    async def threads(self) -> set[str]:
        return {item.config["configurable"]["thread_id"] async for item in self.checkpointer.alist(None)}


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> CSMSettings:
    """One URL for store and checkpoints: the default SQLite in data_dir, or a fresh PostgreSQL schema."""
    url = str(request.getfixturevalue("postgres_url")) if request.param == "postgresql" else None
    return CSMSettings(data_dir=tmp_path / "data", database_url=url, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
async def setup(settings: CSMSettings) -> AsyncIterator[Setup]:
    store = SQLStore(settings.resolved_database_url)
    await store.upsert_accounts(
        [make_account("acct-ok", HEALTHY), make_account("acct-risk", AT_RISK, renews_in_days=20)]
    )
    async with open_checkpointer(settings, allowed_types=CHECKPOINTED_TYPES) as checkpointer:
        yield Setup(settings, store, checkpointer, ScriptedLLM(), MailThatDiesOnce())
    await store.aclose()


async def test_the_checkpointer_follows_the_store_url(setup: Setup) -> None:
    if setup.settings.database_url is None:
        assert isinstance(setup.checkpointer, AsyncSqliteSaver)
        assert (setup.settings.data_dir / "checkpoints.sqlite").is_file()
    else:
        assert isinstance(setup.checkpointer, AsyncPostgresSaver)
        with psycopg.connect(libpq_conninfo(setup.settings.database_url)) as connection:
            tables = connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            ).fetchall()
        assert {"checkpoints", "checkpoint_blobs", "checkpoint_writes"} <= {name for (name,) in tables}


async def test_a_run_that_died_resumes_where_it_stopped_without_repeating_the_llm_call(setup: Setup) -> None:
    agent = setup.agent()
    with pytest.raises(Killed):
        await agent.execute(dict(QBR_TASK), {})
    [thread] = await setup.threads()
    assert len(setup.llm.calls) == 1 and setup.mail.drafts == {}

    with capture_logs() as logs:
        result = await setup.agent().execute(dict(QBR_TASK), {})

    assert result["draft_id"] and result["confidence"] != "low", result
    assert len(setup.llm.calls) == 1, "the resumed run must not ask the LLM again"
    assert len(setup.mail.drafts) == 1 and await setup.store.count("qbr_pages") == 1
    assert {"event": "run_resumed", "thread_id": thread, "log_level": "info"} in logs
    assert await setup.threads() == set(), "a completed run leaves no checkpoints"


async def test_a_rerun_of_a_completed_task_starts_clean_and_creates_nothing_twice(setup: Setup) -> None:
    setup.mail = RecordingMail()
    agent = setup.agent()
    task = {"type": "health_scan", "account_id": "acct-missing"}
    first = await agent.execute(dict(task), {})
    qbr = await agent.execute(dict(QBR_TASK), {})

    second = await agent.execute(dict(task), {})
    qbr_again = await agent.execute(dict(QBR_TASK), {})

    assert first["errors"] == second["errors"] and len(second["errors"]) == 1
    assert qbr_again["draft_id"] == qbr["draft_id"] and len(setup.mail.drafts) == 1
    assert len(setup.llm.calls) == 2 and await setup.threads() == set()


async def test_book_wide_scans_are_not_checkpointed(setup: Setup) -> None:
    setup.mail = RecordingMail()
    result = await setup.agent().execute({"type": "health_scan"}, {})
    listed = await setup.agent().execute({"type": "health_scan", "account_ids": ["acct-ok", "acct-risk"]}, {})

    assert result["scanned_count"] == listed["scanned_count"] == 2
    assert [item async for item in setup.checkpointer.alist(None)] == []


def test_thread_ids_are_deterministic_per_task_subject_and_period() -> None:
    day = date(2026, 11, 24)
    qbr = run_thread_id(QBR_TASK, subject="acct-risk", day=day)
    reordered = run_thread_id(dict(reversed(list(QBR_TASK.items()))), subject="acct-risk", day=day)
    next_day = run_thread_id(QBR_TASK, subject="acct-risk", day=date(2026, 11, 25))
    proximity = run_thread_id({**QBR_TASK, "trigger": "contract_proximity"}, subject="acct-risk", day=day)
    scan = run_thread_id({"type": "health_scan", "account_id": "a1"}, subject="a1", day=day)

    assert qbr == reordered == next_day and qbr.startswith("csm:generate_qbr:acct-risk:Q4 2026:")
    assert proximity != qbr and proximity.startswith("csm:generate_qbr:acct-risk:Q4 2026:")
    assert scan.startswith("csm:health_scan:a1:2026-11-24:")
    assert scan != run_thread_id({"type": "health_scan", "account_id": "a1"}, subject="a1", day=date(2026, 11, 25))


async def test_a_completed_thread_reinvoked_with_new_input_keeps_nothing_from_the_earlier_run(ctx: CSMContext) -> None:
    """What the design relies on: the parent has no reducer channels and subgraph state is per run."""
    await ctx.store.upsert_accounts([make_account("a-risk", AT_RISK)])
    graph = build_customer_success_graph(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "one-thread"}}

    expansion = await graph.ainvoke({"task": {"type": "check_expansion", "account_id": "a-risk"}}, config, context=ctx)
    scans = [
        await graph.ainvoke({"task": {"type": "health_scan", "account_id": "nope"}}, config, context=ctx)
        for _ in range(2)
    ]

    assert expansion["result"]["task_type"] == "check_expansion"
    assert [len(scan["result"]["errors"]) for scan in scans] == [1, 1]
    assert all(scan["handoffs"] == [] and scan["result"]["task_type"] == "health_scan" for scan in scans)


async def test_an_unreachable_postgres_fails_fast_with_a_clear_error_and_no_password(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+psycopg://csm:s3cret-pw@127.0.0.1:{port}/test"
    settings = CSMSettings(data_dir=tmp_path, database_url=url, _env_file=None)  # type: ignore[call-arg]
    started = time.perf_counter()

    with pytest.raises(CheckpointerError) as raised:
        async with open_checkpointer(settings):
            pass

    assert time.perf_counter() - started < 5
    assert f"PostgreSQL checkpointer at postgresql+psycopg://csm:***@127.0.0.1:{port}/test" in str(raised.value)
    assert "s3cret-pw" not in str(raised.value)


def test_store_urls_become_libpq_connection_strings_with_quoted_values() -> None:
    url = "postgresql+psycopg://us%20er:p%40ss%20w%2Frd@db.internal:6543/csm?options=-csearch_path%3Dx+-cTimeZone%3DUTC"

    conninfo = libpq_conninfo(url)

    assert psycopg.conninfo.conninfo_to_dict(conninfo) == {
        "host": "db.internal",
        "port": "6543",
        "dbname": "csm",
        "user": "us er",
        "password": "p@ss w/rd",
        "options": "-csearch_path=x -cTimeZone=UTC",
    }
