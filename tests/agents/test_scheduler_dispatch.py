"""CSM_EXECUTOR=celery without a broker: the scheduler's dispatch, the workers' recording, the run's completion."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from src.app.agents.base import AgentRegistration
from src.app.agents.customer_success.agent import FAILED_WITH, CustomerSuccessAgent
from src.app.agents.customer_success.scheduler import CSMScheduler
from src.app.analysis.health import CSMHealthScorer
from src.app.cli import app
from src.app.config import CSMSettings
from src.app.data.sample_book import load_sample_book
from src.app.tools.store.sql import SQLStore
from src.app.workers.dispatch import task_key
from src.app.workers.tasks import TransientTaskError, retry_delay_s, run_recorded
from tests.support.fakes import RecordingChat, RecordingEvents, RecordingMail, ScriptedLLM

QUARTER_START = datetime(2027, 1, 1, 4, tzinfo=UTC)
BOOK_SIZE = 12


class RecordingDispatcher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    async def enqueue(self, run_id: str, job_id: str, tasks: Sequence[dict[str, Any]]) -> int:
        self.sent.extend((run_id, job_id, task) for task in tasks)
        return len(tasks)


class FailingAgent:
    """The real agent, except for one account, whose task fails the way the agent reports failures."""

    def __init__(self, agent: CustomerSuccessAgent, account_id: str, error_type: str) -> None:
        self.agent, self.account_id, self.error_type, self.calls = agent, account_id, error_type, 0

    async def execute(self, task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        if task.get("account_id") == self.account_id:
            self.calls += 1
            FAILED_WITH.set(self.error_type)
            return {"task_type": task["type"], "error": "no usable reply", "confidence": "low", "partial": True}
        return await self.agent.execute(task, context)


class DiesAfterTheWork:
    """The real agent, in a worker that dies once the task's graph is done, before its outcome is recorded."""

    def __init__(self, agent: CustomerSuccessAgent) -> None:
        self.agent = agent

    async def execute(self, task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        await self.agent.execute(task, context)
        raise WorkerLost("SIGKILL")


class WorkerLost(BaseException):
    """Stands for the worker process dying: nothing after it runs."""


def _agent(store: SQLStore, folder: Path, llm: ScriptedLLM) -> CustomerSuccessAgent:
    return CustomerSuccessAgent(
        AgentRegistration(agent_id="csm-dispatch", name="CustomerSuccess", version="1.0", capabilities=[]),
        llm_service=llm,
        health_scorer=CSMHealthScorer(),
        gmail_service=RecordingMail(),
        chat_service=RecordingChat(),
        event_bus=RecordingEvents(),
        settings=CSMSettings(data_dir=folder),
        store=store,
    )


@pytest.fixture
async def book(tmp_path: Path) -> AsyncIterator[tuple[CustomerSuccessAgent, SQLStore]]:
    store = SQLStore(f"sqlite:///{tmp_path / 'csm.sqlite'}")  # where `csm --data-dir tmp_path` looks
    await store.upsert_accounts(load_sample_book(today=QUARTER_START.date())[:BOOK_SIZE])
    yield _agent(store, tmp_path, ScriptedLLM()), store
    await store.aclose()


async def test_dispatched_run_completes_once_every_task_has_an_outcome(book: Any) -> None:
    agent, store = book
    dispatcher = RecordingDispatcher()
    scheduler = CSMScheduler(agent, store=store, clock=lambda: QUARTER_START, owner="s", dispatcher=dispatcher)
    outcome = await scheduler.run_job("csm_quarterly_qbr")
    active = sorted(a["account_id"] for a in await store.load_accounts())
    assert outcome["status"] == "dispatched" and outcome["sent"] == len(active)
    assert sorted(task["account_id"] for _, _, task in dispatcher.sent) == active
    assert (await store.list_runs())[0].status == "running"
    assert await store.accounts_with_qbr("Q1 2027") == set()  # nothing ran in the scheduler's process

    run_id = outcome["run_id"]
    failing = FailingAgent(agent, active[0], "ValueError")
    results = [await run_recorded(failing, store, run_id, job, task, worker="w1") for _, job, task in dispatcher.sent]
    assert [r["status"] for r in results].count("failed") == 1
    _, job, redelivered = dispatcher.sent[-1]
    again = await run_recorded(failing, store, run_id, job, redelivered, worker="w2")
    assert again["status"] == "duplicate"

    run = (await store.list_runs())[0]
    assert run.status == "succeeded" and run.summary is not None
    assert (run.summary["sent"], run.summary["ok"], run.summary["failed"]) == (len(active), len(active) - 1, 1)
    assert run.summary["errors"] == [{"account_id": active[0], "message": "no usable reply"}]
    usage = run.summary["llm_usage"]
    assert usage["calls"] == usage["by_model"]["scripted"]["calls"] == len(active) - 1, "summed across tasks"
    assert usage["total_tokens"] == usage["by_model"]["scripted"]["total_tokens"] == 18 * (len(active) - 1)
    assert await store.accounts_with_qbr("Q1 2027", "quarterly") == set(active[1:])


async def test_transient_failures_are_retried_until_the_last_try(book: Any) -> None:
    agent, store = book
    dispatcher = RecordingDispatcher()
    scheduler = CSMScheduler(agent, store=store, clock=lambda: QUARTER_START, owner="s", dispatcher=dispatcher)
    outcome = await scheduler.run_job("csm_quarterly_qbr")
    run_id, job, task = dispatcher.sent[0]
    failing = FailingAgent(agent, task["account_id"], "OperationalError")
    with pytest.raises(TransientTaskError):
        await run_recorded(failing, store, run_id, job, task, worker="w1", last_try=False)
    assert not await store.task_recorded(run_id, task_key(task))
    assert (await run_recorded(failing, store, run_id, job, task, worker="w1", last_try=True))["status"] == "failed"
    progress = await store.run_progress(outcome["run_id"])
    assert progress is not None and (progress.sent, progress.failed, progress.status) == (BOOK_SIZE, 1, "running")
    assert retry_delay_s(0) < retry_delay_s(3) <= retry_delay_s(30) == 120.0


async def test_nothing_to_send_completes_the_run_at_once(book: Any) -> None:
    agent, store = book
    local = CSMScheduler(agent, store=store, clock=lambda: QUARTER_START, owner="a")
    assert (await local.run_job("csm_quarterly_qbr"))["status"] == "succeeded"
    dispatcher = RecordingDispatcher()
    scheduler = CSMScheduler(agent, store=store, clock=lambda: QUARTER_START, owner="b", dispatcher=dispatcher)
    outcome = await scheduler.run_job("csm_quarterly_qbr", force=True)
    assert dispatcher.sent == [] and outcome["sent"] == 0
    assert (await store.list_runs())[0].status == "succeeded"


async def test_a_run_taken_over_after_its_lease_counts_each_account_once(book: Any) -> None:
    agent, store = book
    first = RecordingDispatcher()
    scheduler = CSMScheduler(agent, store=store, clock=lambda: QUARTER_START, owner="s1", dispatcher=first)
    run_id = (await scheduler.run_job("csm_quarterly_qbr"))["run_id"]
    failing = FailingAgent(agent, first.sent[0][2]["account_id"], "ValueError")
    for _, job, task in first.sent[:5]:  # the first scheduler's workers got through five, then everything died
        await run_recorded(failing, store, run_id, job, task, worker="w1")

    later = datetime(2027, 1, 1, 7, tzinfo=UTC)
    second = RecordingDispatcher()
    taken = await CSMScheduler(agent, store=store, clock=lambda: later, owner="s2", dispatcher=second).run_job(
        "csm_quarterly_qbr"
    )
    assert taken["run_id"] == run_id and taken["resumed"] and taken["sent"] == BOOK_SIZE
    assert len(second.sent) == BOOK_SIZE - 4  # the failed account is sent again: a no-op when delivered
    for _, job, task in second.sent:
        await run_recorded(failing, store, run_id, job, task, worker="w2")
    run = (await store.list_runs())[0]
    assert run.status == "succeeded" and run.summary is not None
    counts = (run.summary["sent"], run.summary["ok"], run.summary["failed"], run.summary["skipped"])
    assert counts == (BOOK_SIZE, BOOK_SIZE - 1, 1, 0)
    assert failing.calls == 1


async def test_the_calls_of_a_task_whose_worker_died_before_recording_it_count_in_the_run(
    book: Any, tmp_path: Path
) -> None:
    _, store = book
    llm = ScriptedLLM()
    agent = _agent(store, tmp_path, llm)
    dispatcher = RecordingDispatcher()
    scheduler = CSMScheduler(agent, store=store, clock=lambda: QUARTER_START, owner="s", dispatcher=dispatcher)
    run_id = (await scheduler.run_job("csm_quarterly_qbr"))["run_id"]
    _, job, victim = dispatcher.sent[0]
    with pytest.raises(WorkerLost):
        await run_recorded(DiesAfterTheWork(agent), store, run_id, job, victim, worker="w1")
    assert len(llm.calls) == 1 and not await store.task_recorded(run_id, task_key(victim))

    for _, job, task in dispatcher.sent:  # the victim's task is redelivered among the rest
        await run_recorded(agent, store, run_id, job, task, worker="w2")
    run = (await store.list_runs())[0]
    assert run.status == "succeeded" and run.summary is not None
    assert (run.summary["sent"], run.summary["ok"]) == (BOOK_SIZE, BOOK_SIZE)
    usage = run.summary["llm_usage"]
    assert usage["calls"] == len(llm.calls) >= BOOK_SIZE, "every reply the provider sent, the dead worker's too"
    assert usage["total_tokens"] == 18 * len(llm.calls)


async def csm_runs(folder: Path) -> dict[str, Any]:
    """`csm runs --json` on the test's store, as a person would type it (in a thread: it runs its own loop)."""
    result = await asyncio.to_thread(CliRunner().invoke, app, ["runs", "--json", "--data-dir", str(folder)])
    assert result.exit_code == 0, result.output
    [run] = json.loads(result.stdout)["runs"]
    return dict(run)


async def test_csm_runs_shows_progress_while_the_workers_are_on_a_run(book: Any, tmp_path: Path) -> None:
    agent, store = book
    active = sorted(a["account_id"] for a in await store.load_accounts())
    done_before = active[:3]  # these have their QBR already: skipped by the scheduler
    for account_id in done_before:
        task = {"type": "generate_qbr", "account_id": account_id, "period": "Q1 2027", "trigger": "quarterly"}
        assert "error" not in await agent.execute(task, {})
    dispatcher = RecordingDispatcher()
    scheduler = CSMScheduler(agent, store=store, clock=lambda: QUARTER_START, owner="s", dispatcher=dispatcher)
    outcome = await scheduler.run_job("csm_quarterly_qbr")
    sent = len(active) - len(done_before)
    assert (outcome["sent"], outcome["skipped"]) == (sent, len(done_before))

    failing = FailingAgent(agent, dispatcher.sent[0][2]["account_id"], "ValueError")
    for run_id, job, task in dispatcher.sent[:4]:
        await run_recorded(failing, store, run_id, job, task, worker="w1")
    under_way = await csm_runs(tmp_path)
    assert under_way["status"] == "running"
    progress = under_way["progress"]
    assert (progress["sent"], progress["finished"], progress["failed"], progress["skipped"]) == (
        sent,
        3,
        1,
        len(done_before),
    )

    for run_id, job, task in dispatcher.sent[4:]:
        await run_recorded(failing, store, run_id, job, task, worker="w2")
    finished = await csm_runs(tmp_path)
    assert finished["status"] == "succeeded" and "progress" not in finished
    summary = finished["summary"]
    assert (summary["sent"], summary["ok"], summary["failed"], summary["skipped"]) == (
        sent,
        sent - 1,
        1,
        len(done_before),
    )
