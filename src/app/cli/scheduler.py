"""`csm scheduler`: run the three jobs in the foreground, or one job now (`--run-now`)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from src.app.agents.runtime import open_agent, scheduler_for
from src.app.cli.render import Console, progress
from src.app.cli.runs import ensure_accounts
from src.app.config import settings_for


async def run_job_now(
    job_id: str, *, data_dir: Path | None, force: bool, take_over: bool, quiet: bool
) -> dict[str, Any]:
    """Claim and run one job occurrence now; a completed or held occurrence is skipped (unless forced or taken over)."""
    settings = settings_for(data_dir)
    console = Console(quiet=quiet)
    async with open_agent(settings) as (agent, store):
        await ensure_accounts(store, settings, console)
        scheduler = scheduler_for(agent, store, settings)
        with progress(console, f"Running {job_id}"):
            outcome = await scheduler.run_job(job_id, force=force, take_over=take_over)
    for key, value in outcome.items():
        console.print(f"[bold]{key}[/bold]: {value}")
    return outcome


async def serve(*, data_dir: Path | None) -> None:
    """Run the scheduler until SIGINT or SIGTERM, then shut it down cleanly."""
    settings = settings_for(data_dir)
    console = Console()
    async with open_agent(settings) as (agent, store):
        scheduler = scheduler_for(agent, store, settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        scheduler.start()
        for job in scheduler.jobs():
            console.print(f"{job['id']}: next run {job['next_run_time']} ({job['trigger']})")
        console.print("Scheduler running; Ctrl-C to stop.")
        await stop.wait()
        scheduler.stop()
        await asyncio.sleep(0)
        console.print("Scheduler stopped.")
