"""`CeleryDispatcher`: sends a run's per-account tasks to the workers' queue (the scheduler's side)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from celery import Celery

from src.app.agents.customer_success.dispatch import scan_step_key
from src.app.config import CSMSettings
from src.app.workers.app import ACCOUNT_TASK, make_celery


def task_key(task: dict[str, Any]) -> str:
    """The key a task's outcome is recorded under in its run: a scan's step, or type, account, period, trigger."""
    if (step := scan_step_key(task)) is not None:
        return step
    parts = [task.get("type"), task.get("account_id"), task.get("period"), task.get("trigger")]
    return ":".join(str(part) for part in parts if part is not None)


class CeleryDispatcher:
    """Publishes tasks on the configured broker and queue; publishing is blocking I/O, kept off the event loop."""

    def __init__(self, settings: CSMSettings, *, app: Celery | None = None) -> None:
        if settings.broker_url is None:
            raise ValueError("CSM_EXECUTOR=celery needs CSM_BROKER_URL (amqp://... or redis://...)")
        self._app = app or make_celery(settings)
        self._queue = settings.worker_queue

    async def enqueue(self, run_id: str, job_id: str, tasks: Sequence[dict[str, Any]]) -> int:
        """Send one message per task (args: run id, job id, task); the number sent."""
        return await asyncio.to_thread(self._send, run_id, job_id, list(tasks))

    def _send(self, run_id: str, job_id: str, tasks: list[dict[str, Any]]) -> int:
        with self._app.producer_or_acquire() as producer:
            for task in tasks:
                self._app.send_task(ACCOUNT_TASK, args=(run_id, job_id, task), queue=self._queue, producer=producer)
        return len(tasks)
