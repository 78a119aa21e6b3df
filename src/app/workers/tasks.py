"""The Celery task: one per-account task of a scheduled job, its outcome recorded once on the run.

Nothing lost: the message is acknowledged after the task returns and goes back to the queue when its worker
dies (`task_acks_late`, `task_reject_on_worker_lost`). Nothing twice: a redelivered task whose outcome is
recorded does nothing; one that died half-way runs again, and every artifact it writes (QBR page, draft, event,
opportunity) is idempotent by key, its checkpoint resuming the graph where it stopped. Transient errors (the
database, the broker, a provider still failing after the LLM service's own retries) are retried with backoff;
permanent ones, and transient ones past the last retry, are recorded on the run with the account and reason.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import structlog
from celery import Task
from celery.signals import worker_process_init, worker_process_shutdown, worker_ready, worker_shutdown
from sqlalchemy.exc import InterfaceError, OperationalError

from src.app.agents.customer_success.agent import FAILED_WITH, CustomerSuccessAgent
from src.app.agents.customer_success.dispatch import TaskDispatcher, queue_alert_step, step_outcome, with_scanned_pages
from src.app.tools.llm import LLMReply
from src.app.tools.llm.usage import usage_sink
from src.app.tools.store import RunLedger
from src.app.workers.app import ACCOUNT_TASK, app
from src.app.workers.dispatch import CeleryDispatcher, task_key
from src.app.workers.runtime import WorkerRuntime, worker_settings

log = structlog.get_logger(__name__)

MAX_RETRIES = 5
RETRY_BASE_S = 2.0
RETRY_MAX_S = 120.0
TRANSIENT_ERROR_TYPES = frozenset(
    {
        "OperationalError",
        "InterfaceError",
        "ConnectionError",
        "ConnectionRefusedError",
        "ConnectionResetError",
        "TimeoutError",
        "Timeout",
        "RateLimitError",
        "APIConnectionError",
        "InternalServerError",
        "ServiceUnavailableError",
        "CheckpointerError",
    }
)
"""Error classes (as the agent reports them) that are worth another try later."""
_RAISED_TRANSIENT = (OperationalError, InterfaceError, ConnectionError, TimeoutError)

RUNTIME = WorkerRuntime()


@cache
def follow_ups() -> CeleryDispatcher:
    """Sends the tasks a worker starts itself (a scan's alert step) with the worker's app, to its queue."""
    return CeleryDispatcher(worker_settings(), app=app)


class TransientTaskError(RuntimeError):
    """A task failed in a way a later attempt may not."""


def retry_delay_s(retries: int) -> float:
    """Exponential backoff before retry number `retries + 1`, capped."""
    return float(min(RETRY_BASE_S * 2**retries, RETRY_MAX_S))


@app.task(bind=True, name=ACCOUNT_TASK, acks_late=True, reject_on_worker_lost=True, max_retries=MAX_RETRIES)
def account_task(self: Task, run_id: str, job_id: str, task: dict[str, Any]) -> dict[str, Any]:
    """Run one per-account task of run `run_id` and record its outcome; retried on transient errors."""
    last_try = self.request.retries >= MAX_RETRIES
    worker = str(self.request.hostname or "worker")

    async def work(agent: CustomerSuccessAgent, ledger: RunLedger) -> dict[str, Any]:
        return await run_recorded(
            agent, ledger, run_id, job_id, task, worker=worker, last_try=last_try, dispatcher=follow_ups()
        )

    try:
        return RUNTIME.call(work)
    except (TransientTaskError, *_RAISED_TRANSIENT) as error:
        log.warning("task_retry", run_id=run_id, account_id=task.get("account_id"), error=type(error).__name__)
        raise self.retry(exc=error, countdown=retry_delay_s(self.request.retries)) from error


async def run_recorded(
    agent: CustomerSuccessAgent,
    ledger: RunLedger,
    run_id: str,
    job_id: str,
    task: dict[str, Any],
    *,
    worker: str,
    last_try: bool = True,
    dispatcher: TaskDispatcher | None = None,
) -> dict[str, Any]:
    """Execute `task` unless its outcome is recorded already, record the outcome, complete the run when all are.

    Each LLM reply the task receives is recorded on the run as it arrives (the run's `llm_usage` adds them up).

    A whole-book scan's page that finds every page done sends the scan's alert step with `dispatcher`.
    """
    key, account_id = task_key(task), task.get("account_id")
    bound = log.bind(run_id=run_id, job_id=job_id, account_id=account_id, task_type=task.get("type"), task_key=key)
    if await ledger.task_recorded(run_id, key):
        bound.info("task_already_recorded")
        await _after_page(ledger, dispatcher, run_id, job_id, task)  # its worker may have died before sending
        return {"run_id": run_id, "task_key": key, "status": "duplicate"}
    FAILED_WITH.set(None)
    runnable = await with_scanned_pages(ledger, run_id, task)

    async def record_call(reply: LLMReply) -> None:
        await ledger.record_llm_call(run_id, key, reply)

    with usage_sink(record_call):
        result = await agent.execute(runnable, {"job_id": job_id, "run_id": run_id, "scheduler": worker})
    error, error_type = result.get("error"), FAILED_WITH.get()
    if error is not None and error_type in TRANSIENT_ERROR_TYPES and not last_try:
        raise TransientTaskError(f"{error_type}: {error}")
    status = "ok" if error is None else "failed"
    totals, detail = step_outcome(task, result)
    await ledger.record_task(
        run_id, key, account_id=account_id, status=status, reason=error, totals=totals, detail=detail
    )
    await _after_page(ledger, dispatcher, run_id, job_id, task)
    completed = await ledger.complete_if_done(run_id)
    if completed is not None:
        bound.info("run_completed", sent=completed.sent, ok=completed.finished, failed=completed.failed)
    return {"run_id": run_id, "task_key": key, "status": status}


async def _after_page(
    ledger: RunLedger, dispatcher: TaskDispatcher | None, run_id: str, job_id: str, task: dict[str, Any]
) -> None:
    if (
        dispatcher is not None
        and task.get("step") == "page"
        and await queue_alert_step(ledger, dispatcher, run_id, job_id)
    ):
        log.info("scan_alert_step_sent", run_id=run_id, job_id=job_id)


@worker_ready.connect
def _warm_in_worker(sender: Any = None, **_: Any) -> None:
    """threads/solo pools: build the runtime before the worker says it is ready (prefork children do their own)."""
    if "prefork" not in type(getattr(sender, "pool", None)).__module__:
        RUNTIME.warm()


@worker_process_init.connect
def _warm_in_child(**_: Any) -> None:
    RUNTIME.warm()


@worker_process_shutdown.connect
@worker_shutdown.connect
def _close_runtime(**_: Any) -> None:
    RUNTIME.close()
