"""`csm worker` (a Celery worker with the project's settings) and `csm runs` (job runs and their progress)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from src.app.cli.render import Console
from src.app.config import CSMSettings, settings_for
from src.app.context import aclose_clients, build_context
from src.app.tools.store import RunLedger, RunProgress

WAIT_POLL_S = 1.0


def worker_argv(
    *, concurrency: int, queues: list[str] | None, pool: str, name: str | None, loglevel: str, events: bool = False
) -> list[str]:
    """The `celery worker` arguments `csm worker` runs with."""
    from src.app.workers.app import app

    queue_names = queues or [str(app.conf.task_default_queue)]
    node = name or f"csm-{os.getpid()}@%h"
    argv = ["worker", "--pool", pool, "--concurrency", str(concurrency), "--queues", ",".join(queue_names)]
    argv += ["--hostname", node, "--loglevel", loglevel, "--without-gossip", "--without-mingle"]
    return argv + ["--task-events"] if events else argv


TASKS_PER_LLM_SLOT = 2
"""A worker's tasks in flight per LLM request it may have in flight (`CSM_LLM_CONCURRENCY`): while one task of a
slot waits on the provider, the other reads, renders and writes, so the slots, what the provider sees and what
bounds throughput, never wait on a task's other work (the local scheduler's `QBR_CONCURRENCY` rule)."""


def worker_concurrency(settings: CSMSettings, concurrency: int | None) -> int:
    """The tasks a worker keeps in flight: as asked, else `TASKS_PER_LLM_SLOT` per LLM slot."""
    return concurrency if concurrency is not None else TASKS_PER_LLM_SLOT * settings.llm_concurrency


def run_worker(
    *,
    concurrency: int | None,
    queues: list[str] | None,
    pool: str,
    name: str | None,
    loglevel: str,
    events: bool = False,
) -> None:
    """Start a Celery worker in this process until SIGTERM (warm stop) or SIGQUIT (cold)."""
    from src.app.workers.app import app
    from src.app.workers.runtime import worker_settings

    settings = worker_settings()
    if settings.broker_url is None:
        raise ValueError("csm worker needs CSM_BROKER_URL (amqp://... or redis://...)")
    build_context(settings)  # refuses now, not on the first task, a configuration it cannot run (e.g. no Redis)
    tasks = worker_concurrency(settings, concurrency)
    argv = worker_argv(concurrency=tasks, queues=queues, pool=pool, name=name, loglevel=loglevel, events=events)
    app.worker_main(argv)


async def list_runs(*, data_dir: Path | None, limit: int, quiet: bool) -> dict[str, Any]:
    """Recent job runs, newest first; a run its workers are still on shows sent / finished / failed / skipped."""
    settings = settings_for(data_dir)
    context = build_context(settings)
    console = Console(quiet=quiet)
    try:
        runs = await _runs(context.store, limit)
    finally:
        await aclose_clients(context)
    for run in runs:
        progress = run.get("progress")
        line = f"{run['started_at']}  {run['job_id']:<26} {run['key']:<12} {run['status']:<10}"
        if progress:
            line += f" sent {progress['sent']}, finished {progress['finished']}, failed {progress['failed']}"
            line += f", skipped {progress['skipped']}"
        console.print(line)
    return {"runs": runs}


async def wait_for_run(run_id: str, *, data_dir: Path | None, timeout_s: float | None) -> dict[str, Any]:
    """Poll a dispatched run until its workers have finished it (or `timeout_s` passes); its last progress."""
    settings = settings_for(data_dir)
    context = build_context(settings)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        store = context.store
        if not isinstance(store, RunLedger):
            raise TypeError("run progress is kept by the SQL store")
        while True:
            progress = await store.run_progress(run_id)
            if progress is None or progress.status != "running":
                return {} if progress is None else _progress_dict(progress) | {"status": progress.status}
            if deadline is not None and time.monotonic() > deadline:
                return _progress_dict(progress) | {"status": "running"}
            await asyncio.sleep(WAIT_POLL_S)
    finally:
        await aclose_clients(context)


async def _runs(store: Any, limit: int) -> list[dict[str, Any]]:
    list_runs = getattr(store, "list_runs", None)
    if list_runs is None:
        return []
    rows: list[dict[str, Any]] = []
    for record in await list_runs(limit):
        row = record.model_dump(mode="json")
        if record.status == "running" and isinstance(store, RunLedger):
            progress = await store.run_progress(record.run_id)
            if progress is not None and progress.sent is not None:
                row["progress"] = _progress_dict(progress)
        rows.append(row)
    return rows


def _progress_dict(progress: RunProgress) -> dict[str, Any]:
    """Counts as the finished run's summary will hold them (skipped includes what the scheduler did not send)."""
    summary = progress.summary()
    return {
        "run_id": progress.run_id,
        "sent": progress.sent,
        "finished": summary["ok"],
        "failed": summary["failed"],
        "skipped": summary["skipped"],
        "errors": progress.errors,
    }
