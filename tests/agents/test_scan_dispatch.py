"""CSM_EXECUTOR=celery without a broker: the daily scan as page-range tasks, then one alert step for the book."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from src.app.agents.base import AgentRegistration
from src.app.agents.customer_success.agent import CustomerSuccessAgent
from src.app.agents.customer_success.dispatch import ALERT_STEP_KEY, PAGE_KEY_PREFIX, queue_alert_step
from src.app.agents.customer_success.scheduler import CSMScheduler
from src.app.analysis.health import CSMHealthScorer
from src.app.config import CSMSettings
from src.app.data.sample_book import load_sample_book
from src.app.tools.store.sql import SQLStore
from src.app.workers.tasks import run_recorded
from tests.support.fakes import RecordingChat, RecordingEvents, RecordingMail, ScriptedLLM

MORNING = datetime.now(UTC)
JOB = "csm_daily_health_scan"
PAGE_SIZE = 50


class RecordingDispatcher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    async def enqueue(self, run_id: str, job_id: str, tasks: Sequence[dict[str, Any]]) -> int:
        self.sent.extend((run_id, job_id, dict(task)) for task in tasks)
        return len(tasks)

    def take(self) -> list[tuple[str, str, dict[str, Any]]]:
        sent, self.sent = self.sent, []
        return sent


@asynccontextmanager
async def book(folder: Path) -> AsyncIterator[tuple[CustomerSuccessAgent, SQLStore, RecordingMail]]:
    folder.mkdir()
    store = SQLStore(f"sqlite:///{folder / 'scan.sqlite'}")
    await store.upsert_accounts(load_sample_book(today=MORNING.date()))
    mail = RecordingMail()
    agent = CustomerSuccessAgent(
        AgentRegistration(agent_id="csm-scan", name="CustomerSuccess", version="1.0", capabilities=[]),
        llm_service=ScriptedLLM(),
        health_scorer=CSMHealthScorer(),
        gmail_service=mail,
        chat_service=RecordingChat(),
        event_bus=RecordingEvents(),
        settings=CSMSettings(data_dir=folder),
        store=store,
    )
    try:
        yield agent, store, mail
    finally:
        await store.aclose()


def paged_scheduler(agent: CustomerSuccessAgent, store: SQLStore, dispatcher: Any, *, owner: str) -> CSMScheduler:
    """A scheduler at `MORNING` that sends the book to `dispatcher` in pages of `PAGE_SIZE` accounts."""
    return CSMScheduler(
        agent, store=store, clock=lambda: MORNING, owner=owner, dispatcher=dispatcher, scan_page_size=PAGE_SIZE
    )


async def test_a_scan_on_workers_scores_every_page_and_alerts_like_one_process(tmp_path: Path) -> None:
    async with book(tmp_path / "local") as (agent, store, _):
        local = await CSMScheduler(agent, store=store, clock=lambda: MORNING, owner="l").run_job(JOB)
        local_alerts = sorted(alert.account_id for alert in await store.list_alerts())
    assert local["status"] == "succeeded" and local["alerts"] > 0

    async with book(tmp_path / "cluster") as (agent, store, mail):
        dispatcher = RecordingDispatcher()
        scheduler = paged_scheduler(agent, store, dispatcher, owner="s")
        outcome = await scheduler.run_job(JOB)
        active = await store.load_accounts()
        pages = outcome["pages"]
        assert outcome["status"] == "dispatched" and outcome["sent"] == pages + 1
        assert pages == -(-len(active) // PAGE_SIZE) > 3
        assert await store.list_alerts() == [] and await store.latest_scores() == {}  # nothing ran here

        sent = dispatcher.take()
        assert [task["page"] for _, _, task in sent][0][0] is None and sent[-1][2]["page"][1] is None
        for run_id, job, task in sent[:-1]:
            assert (await run_recorded(agent, store, run_id, job, task, worker="w1", dispatcher=dispatcher))[
                "status"
            ] == "ok"
        assert dispatcher.sent == []  # one page to go: no alert step yet
        progress = await store.run_progress(outcome["run_id"])
        assert progress is not None and (progress.sent, progress.finished, progress.status) == (
            pages + 1,
            pages - 1,
            "running",
        )
        run_id, job, last = sent[-1]
        await run_recorded(agent, store, run_id, job, last, worker="w2", dispatcher=dispatcher)
        redelivered = await run_recorded(agent, store, run_id, job, last, worker="w3", dispatcher=dispatcher)
        assert redelivered["status"] == "duplicate"
        steps = dispatcher.take()
        assert len(steps) == 2 and all(task["step"] == "alerts" for _, _, task in steps)  # a race sends it twice
        assert await store.list_alerts() == []  # the pages alert nobody: the step chooses over the whole book

        first, second = [await run_recorded(agent, store, *step, worker="w1", dispatcher=dispatcher) for step in steps]
        assert (first["status"], second["status"]) == ("ok", "duplicate")
        assert not await queue_alert_step(store, dispatcher, run_id, job) and dispatcher.sent == []

        run = (await store.list_runs())[0]
        cluster_alerts = sorted(alert.account_id for alert in await store.list_alerts())
        assert await store.task_recorded(run_id, ALERT_STEP_KEY)

    assert run.status == "succeeded" and run.summary is not None
    summary = run.summary
    assert (summary["sent"], summary["ok"], summary["failed"], summary["skipped"]) == (pages + 1, pages + 1, 0, 0)
    assert (summary["scanned"], summary["scored"]) == (len(active), local["ok"])
    assert (summary["alerts"], summary["alerts_held_back"]) == (local["alerts"], local["alerts_held_back"])
    assert summary["account_errors"] == local["failed"]
    assert summary["llm_usage"] == local["llm_usage"], "the alert step's narratives, per model, as in one process"
    assert cluster_alerts == local_alerts, "the same accounts alerted, the cap applied to the whole book"


async def test_pages_done_before_the_dispatch_is_recorded_still_get_their_alert_step(tmp_path: Path) -> None:
    async with book(tmp_path / "fast") as (agent, store, _):

        class EagerWorkers(RecordingDispatcher):
            """Workers so fast that every page has its outcome before the scheduler records what it sent."""

            async def enqueue(self, run_id: str, job_id: str, tasks: Sequence[dict[str, Any]]) -> int:
                for task in tasks:
                    if task.get("step") == "page":
                        await run_recorded(agent, store, run_id, job_id, dict(task), worker="w", dispatcher=self)
                    else:
                        self.sent.append((run_id, job_id, dict(task)))
                return len(tasks)

        dispatcher = EagerWorkers()
        scheduler = paged_scheduler(agent, store, dispatcher, owner="s")
        outcome = await scheduler.run_job(JOB)
        assert outcome["status"] == "dispatched"
        (step,) = dispatcher.take()
        assert step[2]["step"] == "alerts"
        await run_recorded(agent, store, *step, worker="w", dispatcher=dispatcher)
        run = (await store.list_runs())[0]
    assert run.status == "succeeded" and run.summary is not None
    assert run.summary["ok"] == run.summary["sent"] == outcome["pages"] + 1


async def test_a_run_taken_over_after_the_book_changed_sends_the_same_pages_and_skips_no_account(
    tmp_path: Path,
) -> None:
    async with book(tmp_path / "changed") as (agent, store, _):
        first = RecordingDispatcher()
        scheduler = paged_scheduler(agent, store, first, owner="s1")
        outcome = await scheduler.run_job(JOB)
        book_then = {str(record["account_id"]) for record in await store.load_accounts()}
        old = [task for _, _, task in first.take()]
        run_id = outcome["run_id"]
        await run_recorded(agent, store, run_id, JOB, old[0], worker="w1", dispatcher=first)

        # Ten accounts sorting before every other: cut afresh, each page would start ten accounts earlier.
        added = [{**record, "account_id": f"0000-new-{n}"} for n, record in enumerate(await store.load_accounts())]
        await store.upsert_accounts([*added[:10], {**added[10], "account_id": "zzzz-new"}])
        second = RecordingDispatcher()
        taker = paged_scheduler(agent, store, second, owner="s2")
        again = await taker.run_job(JOB, take_over=True)
        new = [task for _, _, task in second.take()]
        assert again["status"] == "dispatched" and again["resumed"] and again["pages"] == outcome["pages"]
        assert [task["page"] for task in new] == [task["page"] for task in old]

        # Both attempts' pages are delivered, the old ones still queued winning every other page number.
        for index, (stale, fresh) in enumerate(zip(old, new, strict=True)):
            for task in (stale, fresh) if index % 2 == 0 else (fresh, stale):
                await run_recorded(agent, store, run_id, JOB, task, worker="w2", dispatcher=second)
        for step in second.take():
            await run_recorded(agent, store, *step, worker="w3", dispatcher=second)
        scored = set(await store.latest_scores())
        pages = await store.task_details(run_id, PAGE_KEY_PREFIX)
        malformed = {str(error["account_id"]) for page in pages for error in page["errors"]}
        run = (await store.list_runs())[0]

    assert malformed and book_then - malformed <= scored, f"never scored: {sorted(book_then - scored - malformed)[:5]}"
    assert "zzzz-new" in scored  # added past the last cut, whose page had not run: scored, as in one run
    assert not any(f"0000-new-{n}" in scored for n in range(10))  # their page was done: tomorrow's scan
    assert run.status == "succeeded" and run.summary is not None
    tasks = outcome["pages"] + 1
    assert (run.summary["sent"], run.summary["ok"], run.summary["failed"]) == (tasks, tasks, 0)
    assert run.summary["scanned"] == len(book_then) + 1


async def test_a_forced_rerun_of_a_completed_scan_sends_every_page_again_and_the_workers_redo_them(
    tmp_path: Path,
) -> None:
    async with book(tmp_path / "forced") as (agent, store, _):
        dispatcher = RecordingDispatcher()
        scheduler = paged_scheduler(agent, store, dispatcher, owner="s")
        first = await scheduler.run_job(JOB)
        while dispatcher.sent:  # the pages, then the alert step they queue
            for run_id, job, task in dispatcher.take():
                await run_recorded(agent, store, run_id, job, task, worker="w1", dispatcher=dispatcher)
        assert (await store.list_runs())[0].status == "succeeded"
        scored_once = await store.count("health_scores")

        forced = await scheduler.run_job(JOB, force=True)
        assert (forced["run_id"], forced["status"], forced["sent"]) == (first["run_id"], "dispatched", first["sent"])
        assert (await store.list_runs())[0].status == "running"
        statuses = []
        while dispatcher.sent:
            for run_id, job, task in dispatcher.take():
                result = await run_recorded(agent, store, run_id, job, task, worker="w2", dispatcher=dispatcher)
                statuses.append(result["status"])
        assert statuses == ["ok"] * (first["pages"] + 1), "every page and the alert step redone, none a duplicate"
        run = (await store.list_runs())[0]
        assert run.status == "succeeded" and run.summary is not None
        assert (run.summary["sent"], run.summary["ok"]) == (first["sent"], first["sent"]), "counted anew, once"
        assert await store.count("health_scores") == scored_once, "a same-day rerun adds no score rows"
