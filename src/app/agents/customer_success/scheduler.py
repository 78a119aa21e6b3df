"""`CSMScheduler`: the three cron jobs (daily scan, daily contract check, quarterly QBRs) on APScheduler 3.

`start()` works with or without a running event loop. Inside a loop (a service) the jobs run on that loop.
From plain synchronous code (the seed's check, a script) the scheduler gets its own event loop on a daemon
thread, which `stop()` stops, joins and closes, so no loop leaks and no warning is raised.

Every job occurrence has a deterministic key (the local date, or the quarter) and is claimed in the store
before it runs (`CSMStore.claim_run`): one holder at a time across processes, a completed occurrence is not
run again, and a holder that died is taken over once its lease expires. The work inside is idempotent by
key (alerts, drafts, pages, opportunities), and the QBR jobs skip accounts that already have their QBR, so
a resumed run finishes what is left without duplicating anything.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo

import structlog

from src.app.agents.customer_success.dispatch import TaskDispatcher, page_plan, page_tasks, queue_alert_step
from src.app.analysis.signals import days_until
from src.app.config import CSMSettings
from src.app.context import platform_context, service_shape, utc_now
from src.app.scan.book import SCAN_PAGE_SIZE
from src.app.tasks import quarter_label
from src.app.tools.llm.usage import metered
from src.app.tools.store import AccountRanges, CSMStore, RunLedger

log = structlog.get_logger(__name__)

CONTRACT_WINDOW_DAYS = 60
QBR_RENEWAL_WINDOW_DAYS = 90
AT_RISK_RAGS = ("AMBER", "RED")
DEFAULT_LEASE = timedelta(hours=2)
QBR_CONCURRENCY = 32
"""QBR tasks in flight. Keep it above `CSM_LLM_CONCURRENCY` (about twice it) so the LLM service's own limit, what
the provider sees, is the one that binds and its slots never idle while a task reads or writes the store; much
wider only delays the first LLM call while every task loads its account at once."""


_DISPATCH: contextvars.ContextVar[tuple[str, list[int]] | None] = contextvars.ContextVar("csm_dispatch", default=None)
"""The run id a job body dispatches under, and the tasks it sent so far (set by `run_job`)."""


class SchedulableAgent(Protocol):
    """What the scheduler needs from the CSM agent."""

    @property
    def store(self) -> CSMStore:
        """The agent's system of record."""
        ...

    async def execute(self, task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        """Run one task."""
        ...


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job: id, cron fields, misfire grace time and the method that runs it."""

    job_id: str
    cron: dict[str, Any]
    misfire_grace_time: int
    method: str
    quarterly: bool = False


JOB_SPECS = (
    JobSpec("csm_daily_health_scan", {"hour": 7, "minute": 0}, 3600, "run_daily_health_scan"),
    JobSpec("csm_daily_contract_check", {"hour": 8, "minute": 0}, 3600, "run_daily_contract_check"),
    JobSpec(
        "csm_quarterly_qbr",
        {"month": "1,4,7,10", "day": 1, "hour": 4, "minute": 0},
        7200,
        "run_quarterly_qbr",
        quarterly=True,
    ),
)
JOBS_BY_ID = {spec.job_id: spec for spec in JOB_SPECS}


class CSMScheduler:
    """Registers and runs the CSM's scheduled jobs; job methods can also be called directly."""

    def __init__(
        self,
        csm_agent: SchedulableAgent,
        notion_csm: CSMStore | object | None = None,
        *,
        context: Mapping[str, Any] | None = None,
        store: CSMStore | None = None,
        timezone: str = "UTC",
        scheduler: Any = None,
        qbr_concurrency: int = QBR_CONCURRENCY,
        clock: Callable[[], datetime] = utc_now,
        owner: str | None = None,
        lease: timedelta = DEFAULT_LEASE,
        dispatcher: TaskDispatcher | None = None,
        scan_page_size: int = SCAN_PAGE_SIZE,
    ) -> None:
        self._agent = csm_agent
        self._source = _source_store(csm_agent, notion_csm) or store
        self._caller = dict(context or {})
        self._tz = ZoneInfo(timezone)
        self._scheduler = scheduler
        self._qbr_concurrency = qbr_concurrency
        self._clock = clock
        self._owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._lease = lease
        self._dispatcher = dispatcher
        self._scan_page_size = scan_page_size
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Register the three jobs and start; False (with a warning) when APScheduler is not importable."""
        try:
            from apscheduler.schedulers.asyncio import AsyncIOScheduler
            from apscheduler.triggers.cron import CronTrigger
        except ImportError:
            log.warning("scheduler_unavailable", reason="APScheduler is not installed; no jobs scheduled")
            return False
        if self._running:
            return True
        loop = self._running_loop() or self._start_background_loop()
        if self._scheduler is None:
            self._scheduler = AsyncIOScheduler(event_loop=loop, timezone=self._tz)
        elif not self._scheduler.running:
            self._scheduler.configure(event_loop=loop, timezone=self._tz)
        for spec in JOB_SPECS:
            self._scheduler.add_job(
                self.run_job,
                CronTrigger(**spec.cron, timezone=self._tz),
                args=[spec.job_id],
                id=spec.job_id,
                name=spec.job_id,
                misfire_grace_time=spec.misfire_grace_time,
                coalesce=True,
                max_instances=1,
                replace_existing=True,
            )
        self._scheduler.start()
        self._running = True
        log.info("scheduler_started", jobs=[spec.job_id for spec in JOB_SPECS], timezone=str(self._tz))
        return True

    def stop(self) -> None:
        """Shut the scheduler down (idempotent) and release its private event loop, if it has one."""
        if not self._running:
            return
        self._running = False
        self._scheduler.shutdown(wait=False)
        if self._thread is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop.close()
            self._thread, self._loop = None, None
        log.info("scheduler_stopped")

    def jobs(self) -> list[dict[str, Any]]:
        """The registered jobs with their triggers and next run times (the specs when not started)."""
        if not self._running:
            return [{"id": s.job_id, "trigger": s.cron, "next_run_time": None} for s in JOB_SPECS]
        return [
            {"id": job.id, "trigger": str(job.trigger), "next_run_time": _iso(job.next_run_time)}
            for job in self._scheduler.get_jobs()
        ]

    def occurrence_key(self, job_id: str) -> str:
        """The deterministic key of the job's current occurrence: the local date, or the quarter."""
        now = self._clock().astimezone(self._tz)
        return quarter_label(now) if JOBS_BY_ID[job_id].quarterly else now.date().isoformat()

    async def run_job(self, job_id: str, *, force: bool = False, take_over: bool = False) -> dict[str, Any]:
        """Claim and run one job occurrence, recording a run row; skipped when another holder has it.

        The run row's summary includes `llm_usage`: calls, tokens and cost of every completion the job made.
        `force` reruns a completed occurrence; `take_over` claims one whose holder's lease has not run out yet.
        """
        if job_id not in JOBS_BY_ID:
            raise ValueError(f"Unknown job '{job_id}'. Jobs: {', '.join(JOBS_BY_ID)}")
        key, now, store = self.occurrence_key(job_id), self._clock(), self._store()
        claim = await store.claim_run(
            job_id, key, owner=self._owner, lease_until=now + self._lease, now=now, force=force, take_over=take_over
        )
        if claim.run_id is None:
            log.info("job_skipped", job_id=job_id, key=key, owner=self._owner, reason=claim.reason)
            return {"job_id": job_id, "key": key, "status": "skipped", "reason": claim.reason}
        body: Callable[[], Awaitable[dict[str, Any]]] = getattr(self, JOBS_BY_ID[job_id].method)
        sent: list[int] = []
        token = _DISPATCH.set((claim.run_id, sent))
        try:
            with metered() as usage:
                summary = await body()
        except Exception as error:
            failure = {"error": f"{type(error).__name__}: {error}", "llm_usage": usage.summary()}
            await store.finish_run(claim.run_id, "failed", failure)
            log.exception("job_failed", job_id=job_id, key=key)
            return {"job_id": job_id, "key": key, "status": "failed", "error": str(error)}
        finally:
            _DISPATCH.reset(token)
        summary["llm_usage"] = usage.summary()
        if sent:  # the workers finish the run when every task has an outcome
            summary["sent"] = sum(sent)
            await cast(RunLedger, store).record_dispatch(claim.run_id, summary)
            if self._dispatcher is not None:  # a scan whose pages were all done before the dispatch was recorded
                await queue_alert_step(cast(RunLedger, store), self._dispatcher, claim.run_id, job_id)
            if (done := await cast(RunLedger, store).complete_if_done(claim.run_id)) is not None:
                summary = done.summary()
            log.info("job_dispatched", job_id=job_id, key=key, resumed=claim.resumed, **summary)
            outcome = {"job_id": job_id, "key": key, "status": "dispatched", "run_id": claim.run_id}
            return outcome | {"resumed": claim.resumed, **summary}
        await store.finish_run(claim.run_id, "succeeded", summary)
        log.info("job_summary", job_id=job_id, key=key, resumed=claim.resumed, **summary)
        return {"job_id": job_id, "key": key, "status": "succeeded", "resumed": claim.resumed, **summary}

    async def run_daily_health_scan(self) -> dict[str, Any]:
        """One batch health scan over every active account, alerts included (the result keeps only at-risk scores).

        With a dispatcher the book goes to the workers in page-range tasks, then one alert step (`dispatch.py`).
        """
        if self._dispatcher is not None:
            return await self._dispatch_scan("csm_daily_health_scan")
        task = {"type": "health_scan", "summary": True, "digest": True}
        result = await self._execute(task, "csm_daily_health_scan")
        return _scan_summary(result) | {key: result.get(key, 0) for key in ("digests", "digests_existing")}

    async def run_daily_contract_check(self) -> dict[str, Any]:
        """Re-check AMBER/RED accounts renewing within 60 days; QBR those renewing within 90 days without one."""
        now = self._clock()
        store = self._store()
        accounts = await store.load_accounts()
        latest = await store.latest_scores([str(a["account_id"]) for a in accounts])
        renewal, bad_dates = self._renewals(accounts, now)
        at_risk = {
            account_id: days
            for account_id, days in renewal.items()
            if days is not None
            and 0 <= days <= CONTRACT_WINDOW_DAYS
            and account_id in latest
            and latest[account_id].rag in AT_RISK_RAGS
        }
        summary: dict[str, Any] = {"ok": 0, "failed": 0, "skipped": 0, "rechecked": len(at_risk)}
        if at_risk:
            task = {"type": "health_scan", "account_ids": sorted(at_risk), "days_to_renewal": at_risk}
            summary |= _scan_summary(await self._execute(task, "csm_daily_contract_check"))
        if bad_dates:  # reported, and the rest of the book is checked
            summary["failed"] += len(bad_dates)
            summary["errors"] = bad_dates
        period = quarter_label(now.astimezone(self._tz))
        renewing = [a for a, days in renewal.items() if days is not None and 0 <= days <= QBR_RENEWAL_WINDOW_DAYS]
        qbrs = await self._qbrs(sorted(renewing), period, "contract_proximity", "csm_daily_contract_check")
        summary["qbrs"] = qbrs["ok"]
        for count in ("failed", "skipped"):
            summary[count] += qbrs[count]
        return summary

    def _renewals(
        self, accounts: list[dict[str, Any]], now: datetime
    ) -> tuple[dict[str, int | None], list[dict[str, str]]]:
        """Days to renewal per account; an unparsable contract end is reported for its account, not raised."""
        renewal: dict[str, int | None] = {}
        bad: list[dict[str, str]] = []
        for account in accounts:
            account_id, end = str(account["account_id"]), account.get("contract_end_date")
            try:
                renewal[account_id] = days_until(end, now=now, tz=self._tz)
            except (TypeError, ValueError):
                log.warning("contract_end_date_unparsable", account_id=account_id, value=repr(end)[:80])
                bad.append({"account_id": account_id, "message": f"contract_end_date={end!r:.80} is not a valid date"})
        return renewal, bad

    async def run_quarterly_qbr(self) -> dict[str, Any]:
        """A QBR for every active account for the current quarter (accounts that have one are skipped)."""
        period = quarter_label(self._clock().astimezone(self._tz))
        accounts = sorted(str(a["account_id"]) for a in await self._store().load_accounts())
        return {"period": period, **await self._qbrs(accounts, period, "quarterly", "csm_quarterly_qbr")}

    async def _qbrs(self, account_ids: list[str], period: str, trigger: str, job_id: str) -> dict[str, int]:
        done = await self._store().accounts_with_qbr(period, None if trigger == "contract_proximity" else trigger)
        todo = [account_id for account_id in account_ids if account_id not in done]
        if self._dispatcher is not None:
            return await self._dispatch(
                [{"type": "generate_qbr", "account_id": a, "period": period, "trigger": trigger} for a in todo],
                job_id,
                skipped=len(account_ids) - len(todo),
            )
        slots = asyncio.Semaphore(self._qbr_concurrency)

        async def one(account_id: str) -> dict[str, Any]:
            async with slots:
                task = {"type": "generate_qbr", "account_id": account_id, "period": period, "trigger": trigger}
                return await self._execute(task, job_id)

        results = await asyncio.gather(*(one(account_id) for account_id in todo))
        failed = sum(1 for result in results if "error" in result)
        return {"ok": len(results) - failed, "failed": failed, "skipped": len(account_ids) - len(todo)}

    async def _dispatch_scan(self, job_id: str) -> dict[str, Any]:
        """Send the whole book to the workers as page-range tasks; the alert step follows the last page."""
        store = self._store()
        if not isinstance(store, AccountRanges):
            raise TypeError(f"a scan on workers reads the book by id range; {type(store).__name__} cannot")
        dispatcher, run_id, sent = self._dispatch_target()
        bounds = await store.page_bounds(page_size=self._scan_page_size, active_only=True)
        tasks = page_tasks(await page_plan(cast(RunLedger, store), run_id, bounds))
        sent.append(await dispatcher.enqueue(run_id, job_id, tasks) + 1)  # the pages, and the alert step
        return {"ok": 0, "failed": 0, "skipped": 0, "pages": len(tasks)}

    def _dispatch_target(self) -> tuple[TaskDispatcher, str, list[int]]:
        """The dispatcher, the current run's id and its count of tasks sent (only inside `run_job`)."""
        current = _DISPATCH.get()
        if self._dispatcher is None or current is None:
            raise RuntimeError("tasks are dispatched only inside run_job with a dispatcher")
        if not isinstance(self._store(), RunLedger):
            raise TypeError("CSM_EXECUTOR=celery records run progress in the SQL store (set CSM_DATABASE_URL)")
        return self._dispatcher, *current

    async def _dispatch(self, tasks: list[dict[str, Any]], job_id: str, *, skipped: int) -> dict[str, int]:
        """Send per-account tasks to the workers under the current run; they record the outcomes on it."""
        dispatcher, run_id, sent = self._dispatch_target()
        ledger = cast(RunLedger, self._store())
        # A run taken over after its lease: the QBRs its workers made count as its own, not as skipped, and the
        # accounts they failed (no QBR, so among `tasks` again) are no-ops when delivered: they count once.
        earlier = await ledger.run_progress(run_id)
        earlier_ok = earlier.finished if earlier is not None else 0
        sent.append((await dispatcher.enqueue(run_id, job_id, tasks) if tasks else 0) + earlier_ok)
        return {"ok": 0, "failed": 0, "skipped": skipped - earlier_ok}

    async def _execute(self, task: dict[str, Any], job_id: str) -> dict[str, Any]:
        return await self._agent.execute(task, {**self._caller, "job_id": job_id, "scheduler": self._owner})

    def _store(self) -> CSMStore:
        return self._source or self._agent.store

    @staticmethod
    def _running_loop() -> asyncio.AbstractEventLoop | None:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return None

    def _start_background_loop(self) -> asyncio.AbstractEventLoop:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="csm-scheduler-loop", daemon=True)
        self._thread.start()
        return self._loop


def _source_store(agent: SchedulableAgent, notion_csm: CSMStore | object | None) -> CSMStore | None:
    """The store to plan jobs from: ours as is; the platform's Notion adapter through the agent's wrapper of it."""
    if notion_csm is None or service_shape("notion_csm", notion_csm) == "ours":
        return cast(CSMStore | None, notion_csm)
    wrapped = agent.store
    if getattr(agent, "_notion_csm", None) is notion_csm:
        return wrapped
    settings = getattr(agent, "settings", None) or CSMSettings()
    return platform_context(settings, agent_id="csm-scheduler", notion_csm=notion_csm, store=wrapped).store


def _scan_summary(result: dict[str, Any]) -> dict[str, Any]:
    if "error" in result:
        raise RuntimeError(result["error"])
    return {
        "ok": result.get("scored_count", len(result.get("health_scores", []))),
        "failed": len(result.get("errors", [])),
        "skipped": 0,
        "alerts": result.get("alerts_dispatched", 0),
        "alerts_held_back": result.get("alerts_held_back", 0),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
