"""`CSMScheduler`: the three cron jobs (daily scan, daily contract check, quarterly QBRs) on APScheduler 3.

`start()` works with or without a running event loop. Inside a loop (a service) the jobs run on that loop.
From plain synchronous code (the seed's check, a script) the scheduler gets its own event loop on a daemon
thread, which `stop()` stops, joins and closes, so no loop leaks and no warning is raised.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import structlog

from src.app.analysis.signals import days_until
from src.app.context import utc_now
from src.app.nodes.common import quarter_label
from src.app.tools.store import CSMStore

log = structlog.get_logger(__name__)

CONTRACT_WINDOW_DAYS = 60
AT_RISK_RAGS = ("AMBER", "RED")


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


JOB_SPECS = (
    JobSpec("csm_daily_health_scan", {"hour": 7, "minute": 0}, 3600, "run_daily_health_scan"),
    JobSpec("csm_daily_contract_check", {"hour": 8, "minute": 0}, 3600, "run_daily_contract_check"),
    JobSpec(
        "csm_quarterly_qbr",
        {"month": "1,4,7,10", "day": 1, "hour": 4, "minute": 0},
        7200,
        "run_quarterly_qbr",
    ),
)


class CSMScheduler:
    """Registers and runs the CSM's scheduled jobs; job methods can also be called directly."""

    def __init__(
        self,
        csm_agent: SchedulableAgent,
        notion_csm: CSMStore | None = None,
        *,
        store: CSMStore | None = None,
        timezone: str = "UTC",
        scheduler: Any = None,
        qbr_concurrency: int = 8,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._agent = csm_agent
        self._source = notion_csm or store
        self._tz = ZoneInfo(timezone)
        self._scheduler = scheduler
        self._qbr_concurrency = qbr_concurrency
        self._clock = clock
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
                getattr(self, spec.method),
                CronTrigger(**spec.cron, timezone=self._tz),
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

    async def run_daily_health_scan(self) -> dict[str, Any]:
        """One batch health scan over every active account, alerts included."""
        result = await self._agent.execute({"type": "health_scan"}, {"job_id": "csm_daily_health_scan"})
        log.info("job_done", job_id="csm_daily_health_scan", scanned=result.get("scanned_count"))
        return result

    async def run_daily_contract_check(self) -> dict[str, Any]:
        """A focused scan of accounts renewing within 60 days whose latest health is AMBER or RED."""
        now = self._clock()
        store = self._store()
        accounts = await store.load_accounts()
        latest = await store.latest_scores([str(a["account_id"]) for a in accounts])
        renewing: dict[str, int] = {}
        for account in accounts:
            days = days_until(account.get("contract_end_date"), now=now, tz=self._tz)
            score = latest.get(str(account["account_id"]))
            if days is not None and 0 <= days <= CONTRACT_WINDOW_DAYS and score and score.rag in AT_RISK_RAGS:
                renewing[str(account["account_id"])] = days
        if not renewing:
            log.info("job_done", job_id="csm_daily_contract_check", renewing=0)
            return {"task_type": "health_scan", "scanned_count": 0, "health_scores": [], "errors": []}
        task = {"type": "health_scan", "account_ids": sorted(renewing), "days_to_renewal": renewing}
        result = await self._agent.execute(task, {"job_id": "csm_daily_contract_check"})
        log.info("job_done", job_id="csm_daily_contract_check", renewing=len(renewing))
        return result

    async def run_quarterly_qbr(self) -> dict[str, Any]:
        """A QBR for every active account for the current quarter, with bounded concurrency."""
        period = quarter_label(self._clock().astimezone(self._tz))
        accounts = await self._store().load_accounts()
        slots = asyncio.Semaphore(self._qbr_concurrency)

        async def one(account_id: str) -> dict[str, Any]:
            async with slots:
                task = {
                    "type": "generate_qbr",
                    "account_id": account_id,
                    "period": period,
                    "trigger": "quarterly",
                }
                return await self._agent.execute(task, {"job_id": "csm_quarterly_qbr"})

        results = await asyncio.gather(*(one(str(a["account_id"])) for a in accounts))
        failed = sum(1 for r in results if "error" in r)
        log.info("job_done", job_id="csm_quarterly_qbr", period=period, ok=len(results) - failed, failed=failed)
        return {"period": period, "generated": len(results) - failed, "failed": failed}

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


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
