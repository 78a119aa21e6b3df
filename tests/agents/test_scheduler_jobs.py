from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from src.app.agents.base import AgentRegistration
from src.app.agents.customer_success.agent import CustomerSuccessAgent
from src.app.agents.customer_success.scheduler import CSMScheduler
from src.app.analysis.health import CSMHealthScorer
from src.app.analysis.signals import days_until
from src.app.config import CSMSettings
from src.app.data.sample_book import load_sample_book
from src.app.tools.store.sql import SQLStore
from tests.support.fakes import RecordingChat, RecordingEvents, RecordingMail, ScriptedLLM

NOW = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
BOOK_SIZE = 60


class Killed(BaseException):
    """Stands in for the process dying: not an Exception, so nothing in the job catches it."""


class KillingAgent:
    """Forwards to the real agent and dies after `limit` tasks of the given type."""

    def __init__(self, agent: CustomerSuccessAgent, task_type: str, limit: int) -> None:
        self.agent, self.task_type, self.limit, self.seen = agent, task_type, limit, 0

    @property
    def store(self) -> Any:
        return self.agent.store

    async def execute(self, task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        if task["type"] == self.task_type:
            self.seen += 1
            if self.seen > self.limit:
                raise Killed
        return await self.agent.execute(task, context)


@pytest.fixture
async def book(tmp_path: Path) -> AsyncIterator[tuple[CustomerSuccessAgent, SQLStore, RecordingMail]]:
    store = SQLStore(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    await store.upsert_accounts(load_sample_book(today=NOW.date())[:BOOK_SIZE])
    mail = RecordingMail()
    agent = CustomerSuccessAgent(
        AgentRegistration(agent_id="csm-jobs", name="CustomerSuccess", version="1.0", capabilities=[]),
        llm_service=ScriptedLLM(),
        health_scorer=CSMHealthScorer(),
        gmail_service=mail,
        chat_service=RecordingChat(),
        event_bus=RecordingEvents(),
        settings=CSMSettings(data_dir=tmp_path),
        store=store,
    )
    yield agent, store, mail
    await store.aclose()


def scheduler_for(agent: Any, store: SQLStore, *, at: datetime = NOW, owner: str = "a") -> CSMScheduler:
    return CSMScheduler(agent, store=store, clock=lambda: at, owner=owner, qbr_concurrency=4)


async def test_daily_scan_scores_the_book_in_one_batch_and_records_a_run(book: Any) -> None:
    agent, store, mail = book
    outcome = await scheduler_for(agent, store).run_job("csm_daily_health_scan")
    active = [a for a in await store.load_accounts()]
    assert outcome["status"] == "succeeded" and outcome["key"] == "2026-11-24"
    assert outcome["ok"] + outcome["failed"] == len(active) and outcome["alerts"] == _alert_drafts(mail) >= 1
    [run] = await store.list_runs()
    assert (run.job_id, run.status, run.summary["ok"]) == ("csm_daily_health_scan", "succeeded", outcome["ok"])


async def test_rerun_of_each_job_creates_nothing_new(book: Any) -> None:
    agent, store, mail = book
    sched = scheduler_for(agent, store)
    for job in ("csm_daily_health_scan", "csm_daily_contract_check", "csm_quarterly_qbr"):
        assert (await sched.run_job(job))["status"] == "succeeded"
    counts = {t: await store.count(t) for t in ("qbr_pages", "alerts", "audit_log")}
    drafts = len(mail.drafts)
    for job in ("csm_daily_health_scan", "csm_daily_contract_check", "csm_quarterly_qbr"):
        assert (await sched.run_job(job))["status"] == "skipped"
    assert {t: await store.count(t) for t in counts} == counts and len(mail.drafts) == drafts
    for job in ("csm_daily_health_scan", "csm_daily_contract_check", "csm_quarterly_qbr"):
        assert (await sched.run_job(job, force=True))["status"] == "succeeded"
    assert await store.count("qbr_pages") == counts["qbr_pages"]
    alerted = [alert.account_id for alert in await store.list_alerts(limit=1000)]
    assert len(alerted) == len(set(alerted)), "a forced rerun may alert the next accounts, never the same one twice"


async def test_contract_check_rechecks_renewing_amber_red_and_qbrs_renewals(book: Any) -> None:
    agent, store, _ = book
    sched = scheduler_for(agent, store)
    await sched.run_job("csm_daily_health_scan")
    latest = await store.latest_scores()
    accounts = await store.load_accounts()
    renewal = {a["account_id"]: days_until(a.get("contract_end_date"), now=NOW, tz=UTC) for a in accounts}
    expected = {
        a for a, d in renewal.items() if d is not None and 0 <= d <= 60 and a in latest and latest[a].rag != "GREEN"
    }
    outcome = await sched.run_job("csm_daily_contract_check")
    assert outcome["rechecked"] == len(expected) > 0
    qbr_accounts = await store.accounts_with_qbr("Q4 2026", "contract_proximity")
    assert qbr_accounts == {a for a, d in renewal.items() if d is not None and 0 <= d <= 90} and outcome["qbrs"] == len(
        qbr_accounts
    )


async def test_quarterly_qbr_covers_every_active_account_for_the_quarter(book: Any) -> None:
    agent, store, _ = book
    outcome = await scheduler_for(agent, store, at=datetime(2027, 1, 1, 4, tzinfo=UTC)).run_job("csm_quarterly_qbr")
    active = {a["account_id"] for a in await store.load_accounts()}
    assert outcome["key"] == "Q1 2027" and outcome["period"] == "Q1 2027"
    assert await store.accounts_with_qbr("Q1 2027", "quarterly") == active
    assert outcome["ok"] == len(active) and outcome["failed"] == 0 and outcome["skipped"] == 0


async def test_a_killed_qbr_run_resumes_after_its_lease_and_finishes_without_duplicates(book: Any) -> None:
    agent, store, mail = book
    dying = scheduler_for(KillingAgent(agent, "generate_qbr", limit=10), store, owner="dead")
    with pytest.raises(Killed):
        await dying.run_job("csm_quarterly_qbr")
    written = await store.accounts_with_qbr("Q4 2026", "quarterly")
    assert 0 < len(written) < BOOK_SIZE
    blocked = await scheduler_for(agent, store, owner="b").run_job("csm_quarterly_qbr")
    assert blocked["status"] == "skipped" and "held by dead" in blocked["reason"]
    later = NOW + timedelta(hours=3)
    resumed = await scheduler_for(agent, store, at=later, owner="b").run_job("csm_quarterly_qbr")
    active = {a["account_id"] for a in await store.load_accounts()}
    assert resumed["status"] == "succeeded" and resumed["resumed"] is True
    assert resumed["skipped"] >= len(written) and resumed["ok"] + resumed["skipped"] == len(active)
    assert await store.count("qbr_pages") == len(active) and len(mail.drafts) == len(active)


async def test_two_schedulers_on_one_store_run_an_occurrence_once(book: Any, tmp_path: Path) -> None:
    agent, store, _ = book
    other_store = SQLStore(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    first, second = scheduler_for(agent, store, owner="a"), scheduler_for(agent, other_store, owner="b")
    with capture_logs() as logs:
        outcomes = await asyncio.gather(first.run_job("csm_daily_health_scan"), second.run_job("csm_daily_health_scan"))
    await other_store.aclose()
    assert sorted(o["status"] for o in outcomes) == ["skipped", "succeeded"]
    skipped = next(log for log in logs if log["event"] == "job_skipped")
    assert "held by" in skipped["reason"] and len(await store.list_runs()) == 1


async def test_unknown_job_is_rejected(book: Any) -> None:
    agent, store, _ = book
    with pytest.raises(ValueError, match="Unknown job 'nightly'"):
        await scheduler_for(agent, store).run_job("nightly")


def _alert_drafts(mail: RecordingMail) -> int:
    return sum(kind == "churn_alert" for _, _, kind in mail.drafts.values())
