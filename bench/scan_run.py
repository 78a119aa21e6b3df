"""The measuring side of `bench.scan`, run in a fresh process per book size so its peak RSS is its own.

Each timed run gets a fresh copy of the prepared store (accounts + yesterday's scan), so every run does the
same work: score and persist every active account, choose at most five alerts, write their narratives with
the offline LLM, and dispatch them. The process first imports litellm, opens the store and warms up
with a few single-account scans on a throw-away copy, as a running scheduler has before its daily job fires.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter, process_time
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from bench.common import ChildPeaks, current_rss_mb, emit, peak_rss_mb, stats
from bench.scan_floor import Written, database_file, last_history_id, replay, written_since
from src.app.agents.customer_success.agent import CustomerSuccessAgent
from src.app.agents.runtime import open_agent
from src.app.analysis.health import CSMHealthScorer
from src.app.analysis.signals import DETAIL_FIELDS, AccountDataError, signals_from_record
from src.app.config import OFFLINE_MODEL, CSMSettings
from src.app.logging_setup import configure_logging
from src.app.tools.llm.litellm_service import load_litellm
from src.app.tools.store.sql import SQLStore

T = TypeVar("T")
DAILY_SCAN = {"type": "health_scan", "summary": True}
"""The daily job's task: the whole book, returning counts and the scores that should alert."""
FULL_SCAN = {"type": "health_scan"}
"""The same scan returning every account's score."""
WARM_UP_SAMPLE = 20
JOB_CONTEXT = {"job_id": "csm_daily_health_scan", "scheduler": "bench"}


def bench_settings(data_dir: Path) -> CSMSettings:
    """Embedded defaults in `data_dir` (SQLite store, local outbox, offline LLM), ignoring any `.env`."""
    return CSMSettings(data_dir=data_dir, database_url=None, llm_model=OFFLINE_MODEL, _env_file=None)


@contextmanager
def fresh_copy(template: Path) -> Iterator[Path]:
    """A throw-away copy of the prepared data folder."""
    with tempfile.TemporaryDirectory(prefix="csm-bench-", dir=template.parent) as scratch:
        data_dir = Path(scratch) / "data"
        shutil.copytree(template, data_dir)
        yield data_dir


@asynccontextmanager
async def ready_agent(template: Path) -> AsyncIterator[tuple[CustomerSuccessAgent, SQLStore]]:
    """A fully wired agent on a fresh copy of the store, with the store's engine already open."""
    with fresh_copy(template) as data_dir:
        async with open_agent(bench_settings(data_dir)) as (agent, store):
            if not isinstance(store, SQLStore):
                raise TypeError(f"the scan benchmark needs the embedded SQL store, got {type(store).__name__}")
            await store.count("accounts")
            yield agent, store


async def timed(call: Callable[[], Awaitable[T]]) -> tuple[float, T]:
    """Wall seconds of one awaited call, and its value."""
    start = perf_counter()
    value = await call()
    return perf_counter() - start, value


async def loop_run(template: Path) -> dict[str, float]:
    """The parent implementation's pattern on the same accounts, already in memory, nothing persisted.

    A plain Python loop calling the reference `CSMHealthScorer().score` once per account: `signals_s` times the
    calls on signals already validated; `records_s` also validates each record's signals
    (`signals_from_record`), which a loop over raw records must do to call `score`. CPU seconds of this process.
    """
    async with ready_agent(template) as (_, store):
        records = [r async for page in store.iter_accounts(page_size=10_000, omit=DETAIL_FIELDS) for r in page]
    scorer, now, tz = CSMHealthScorer(), datetime.now(UTC), ZoneInfo("UTC")
    gc.freeze()
    try:
        started = process_time()
        signals = []
        for record in records:
            try:
                signals.append((signals_from_record(record, now=now, tz=tz), str(record["account_id"])))
            except AccountDataError:
                continue
        validated = process_time()
        for values, account_id in signals:
            scorer.score(values, account_id)
        done = process_time()
    finally:
        gc.unfreeze()
    return {"accounts": len(signals), "signals_s": done - validated, "records_s": done - started}


async def batch_run(template: Path, task: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """One daily scan (the scheduler's `health_scan` over the whole book): seconds, and what it did."""
    async with ready_agent(template) as (agent, store):
        before = await store.count("health_scores")
        with ChildPeaks() as helpers:
            cpu = process_time()
            seconds, result = await timed(lambda: agent.execute(dict(task), dict(JOB_CONTEXT)))
            cpu = process_time() - cpu
        if "error" in result:
            raise RuntimeError(f"the batch scan failed: {result['error']}")
        persisted = await store.count("health_scores") - before
    return seconds, {
        "persisted": persisted,
        "scanned": result["scanned_count"],
        "errors": len(result["errors"]),
        "alerts": result["alerts_dispatched"],
        "helpers_peak_rss_mb": helpers.total_mb,
        "cpu_s": cpu,
    }


async def floor_written(template: Path, task: dict[str, Any]) -> Written:
    """What one scan writes to a fresh copy of the store (`bench.scan_floor`), untimed."""
    with fresh_copy(template) as data_dir:
        database = database_file(bench_settings(data_dir).resolved_database_url)
        last = last_history_id(database)
        async with open_agent(bench_settings(data_dir)) as (agent, _):
            await agent.execute(dict(task), dict(JOB_CONTEXT))
        return written_since(database, last)


def floor_run(template: Path, written: Written) -> dict[str, float]:
    """The scan's storage floor: its writes replayed by the driver on a fresh copy of the store."""
    with fresh_copy(template) as data_dir:
        return replay(database_file(bench_settings(data_dir).resolved_database_url), written)


async def baseline_run(template: Path, sample: int) -> dict[str, Any]:
    """The naive pattern: one graph invocation (`health_scan` with an `account_id`) per account of a sample."""
    async with ready_agent(template) as (agent, store):
        ids = [str(record["account_id"]) async for page in store.iter_accounts() for record in page]
        chosen = ids[:: max(1, len(ids) // sample)][:sample]
        per_call, alerts = [], 0
        for account_id in chosen:
            task = {"type": "health_scan", "account_id": account_id}
            seconds, result = await timed(lambda task=task: agent.execute(task, dict(JOB_CONTEXT)))  # type: ignore[misc]
            per_call.append(seconds)
            alerts += int(result.get("alerts_dispatched", 0))
    return {"sample": len(chosen), "per_account_s": stats(per_call, 6), "total_s": sum(per_call), "alerts": alerts}


async def profile_run(template: Path, task: dict[str, Any], output: Path) -> None:
    """One more batch scan under pyinstrument, with the store's worker-thread calls run inline so they show."""
    from pyinstrument import Profiler

    async def inline(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        return function(*args, **kwargs)

    original, asyncio.to_thread = asyncio.to_thread, inline
    try:
        with Profiler(async_mode="disabled", interval=0.0005) as profiler:
            await batch_run(template, task)
    finally:
        asyncio.to_thread = original
    output.write_text(profiler.output_text(unicode=True, color=False, show_all=False), encoding="utf-8")


async def measure(
    template: Path, runs: int, sample: int, profile: Path | None, full: bool, loop: bool = True
) -> dict[str, Any]:
    """All figures of one book size, measured in this process."""
    task = FULL_SCAN if full else DAILY_SCAN
    configure_logging(level="ERROR")
    load_litellm()
    await baseline_run(template, WARM_UP_SAMPLE)  # first-call costs (LLM path, drafts, validators) stay untimed
    rss_ready = current_rss_mb()
    seconds: list[float] = []
    cpu: list[float] = []
    loops: list[dict[str, float]] = []
    floors: list[dict[str, float]] = []
    written: Written | None = None
    facts: dict[str, Any] = {}
    helpers_peak = 0.0
    peak_before_loops = 0.0
    for _ in range(runs):  # scan and loop alternate, so both see the same load on a shared machine
        elapsed, facts = await batch_run(template, task)
        seconds.append(elapsed)
        cpu.append(facts.pop("cpu_s"))
        helpers_peak = max(helpers_peak, facts.pop("helpers_peak_rss_mb"))
        if loop:
            if not loops:  # the first scan's peak: the loop holds the whole book in memory, which the scan does not
                peak_before_loops = peak_rss_mb()
            loops.append(await loop_run(template))
            written = written or await floor_written(template, task)
            floors.append(floor_run(template, written))
    figures: dict[str, Any] = {"task": task, "batch_s": stats(seconds), **facts, "rss_ready_mb": rss_ready}
    figures["batch_cpu_s"] = stats(cpu)
    if loops:
        figures["loop"] = {
            "accounts": loops[0]["accounts"],
            "signals_cpu_s": stats([run["signals_s"] for run in loops]),
            "records_cpu_s": stats([run["records_s"] for run in loops]),
        }
        figures["floor"] = {
            "accounts": floors[0]["accounts"],
            "cpu_s": stats([run["cpu_s"] for run in floors]),
            "wall_s": stats([run["wall_s"] for run in floors]),
        }
    figures["peak_rss_main_mb"] = peak_before_loops if loops else peak_rss_mb()
    figures["peak_rss_helpers_mb"] = helpers_peak
    figures["peak_rss_mb"] = round(figures["peak_rss_main_mb"] + helpers_peak, 1)
    if sample:
        figures["baseline"] = await baseline_run(template, sample)
    if profile is not None:
        await profile_run(template, task, profile)
    return figures


def main() -> None:
    """Command line: `python -m bench.scan_run TEMPLATE_DIR --runs K --baseline-sample S [--profile FILE]`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("template", type=Path, help="Prepared data folder (accounts + yesterday's scan).")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline-sample", type=int, default=1000)
    parser.add_argument("--profile", type=Path, default=None, help="Write a pyinstrument profile of one scan here.")
    parser.add_argument("--full", action="store_true", help="Return every account's score, not the summary.")
    parser.add_argument("--no-loop", action="store_true", help="Skip the in-memory scoring loop of each run.")
    args = parser.parse_args()
    figures = asyncio.run(
        measure(args.template, args.runs, args.baseline_sample, args.profile, args.full, loop=not args.no_loop)
    )
    emit("scan_run", figures)


if __name__ == "__main__":
    main()
