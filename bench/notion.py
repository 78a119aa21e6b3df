"""Notion scan: the daily health scan of N accounts read from a local Notion-speaking server capped at 3 requests/s.

`python -m bench.notion [--accounts 1000] [--changed 50] [--runs 5]`

The server (`tests/support/notion_server.py`) holds an accounts database of N generated active accounts and
answers more than 3 requests in any second with 429 + Retry-After. The app runs as deployed with the Notion
backend: `CSM_NOTION_*` settings wire `NotionStore.from_settings` (notion-client, 3 requests/s) around a fresh SQLite
store; the real agent and its `health_scan` task (the daily job's summary scan, alerts included).

Before the runs, one unthrottled scan writes today's score and RAG onto every page. Each timed run then sets
`--changed` pages' held score to a stale value and scans with a fresh inner store, so the scan must make
⌈N/100⌉ queries plus exactly `--changed` page updates (the lower bound) and, at 3 requests/s, take at least
lower bound / 3 seconds. The one extra request is `databases.retrieve` (finding the data source, once per
process).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any

from bench.common import emit, stats
from src.app.agents.runtime import open_agent
from src.app.config import OFFLINE_MODEL, CSMSettings
from src.app.data.sample_book import generate_accounts
from src.app.logging_setup import configure_logging
from src.app.tools.llm.litellm_service import load_litellm
from src.app.tools.store.notion.store import NotionStore
from tests.support.notion_server import NotionServer, RateLimit, p_number, seed_accounts

TOKEN = "secret_bench_notion_token"
REQUESTS_PER_S = 3.0
DAILY_SCAN = {"type": "health_scan", "summary": True}
"""The daily job's task: the whole book, returning counts and the scores that should alert."""
UNTHROTTLED_PER_S = 10_000.0
"""The client's rate for the set-up scan, which runs before the server's limit is switched on."""
STALE_OFFSET = 7.5
"""Added to a changed page's held score (kept within 0–100) so it no longer matches today's."""


def notion_settings(data_dir: Path, server: NotionServer, database_id: str, requests_per_s: float) -> CSMSettings:
    """Embedded inner store and outbox in `data_dir`, accounts from the server's database, offline LLM."""
    return CSMSettings(
        data_dir=data_dir,
        database_url=None,
        llm_model=OFFLINE_MODEL,
        notion_token=TOKEN,
        notion_base_url=server.base_url,
        notion_accounts_database_id=database_id,
        notion_requests_per_s=requests_per_s,
        _env_file=None,
    )


async def scan(settings: CSMSettings) -> tuple[float, dict[str, Any], NotionStore]:
    """One daily scan through the agent wired from `settings` (the Notion store): seconds, result, store."""
    async with open_agent(settings) as (agent, store):
        if not isinstance(store, NotionStore):
            raise RuntimeError(f"the settings wired {type(store).__name__}, not the Notion store")
        started = perf_counter()
        result = await agent.execute(dict(DAILY_SCAN), {"job_id": "csm_daily_health_scan", "scheduler": "bench"})
        seconds = perf_counter() - started
    if "error" in result:
        raise RuntimeError(f"the Notion scan failed: {result['error']}")
    return seconds, result, store


def make_stale(server: NotionServer, source: str, changed: int) -> None:
    """Give `changed` evenly spread pages a held score that differs from today's (as if their data moved)."""
    pages = server.pages_in(source)
    for page in pages[:: max(1, len(pages) // changed)][:changed]:
        held = page["properties"]["CSM Health Score"]["number"]
        page["properties"]["CSM Health Score"] = p_number(held + STALE_OFFSET if held < 50 else held - STALE_OFFSET)


async def measure(accounts: int, changed: int, runs: int, scratch: Path) -> dict[str, Any]:
    """Set the book up, then time `runs` throttled scans; per run: seconds and the server's request log."""
    configure_logging(level="ERROR")
    await asyncio.to_thread(load_litellm)  # alert narratives use the LLM layer: keep its import out of the timing
    records = generate_accounts(accounts, as_of=datetime.now(UTC).date())
    for record in records:
        record["status"] = "active"
    with NotionServer(token=TOKEN) as server:
        database_id, source = seed_accounts(server, records)
        await scan(notion_settings(scratch / "setup", server, database_id, UNTHROTTLED_PER_S))
        server.rate_limit = RateLimit(requests=int(REQUESTS_PER_S), window_s=1.0, retry_after_s=1)
        results = []
        for run in range(runs):
            make_stale(server, source, changed)
            server.requests.clear()
            settings = notion_settings(scratch / f"run-{run}", server, database_id, REQUESTS_PER_S)
            seconds, result, store = await scan(settings)
            results.append(_run_figures(server, seconds, result, store))
    return {"runs": results}


def _run_figures(server: NotionServer, seconds: float, result: dict[str, Any], store: NotionStore) -> dict[str, Any]:
    """What one scan did, from the server's log and the store's error lists."""
    log = list(server.requests)
    kinds = Counter(_kind(request.method, request.path) for request in log if request.status != 429)
    statuses = Counter(request.status for request in log)
    return {
        "seconds": seconds,
        "scanned": result["scanned_count"],
        "requests": len(log),
        "answered": statuses[200],
        "status_429": statuses[429],
        "failed": len(log) - statuses[200] - statuses[429],
        "by_kind": dict(kinds),
        "load_errors": len(store.load_errors),
        "write_errors": len(store.write_errors),
    }


def _kind(method: str, path: str) -> str:
    if method == "POST" and path.endswith("/query"):
        return "query"
    if method == "PATCH" and path.startswith("/v1/pages/"):
        return "page_update"
    if method == "GET" and path.startswith("/v1/databases/"):
        return "database_retrieve"
    return f"{method} {path.split('/')[2] if path.count('/') > 1 else path}"


def figures(accounts: int, changed: int, measured: dict[str, Any]) -> dict[str, Any]:
    """Requests vs the lower bound, time vs the 3 requests/s bound, failures and 429s."""
    runs = measured["runs"]
    lower_bound = math.ceil(accounts / 100) + changed
    bound_s = lower_bound / REQUESTS_PER_S
    seconds = stats([run["seconds"] for run in runs], 2)
    last = runs[-1]
    out: dict[str, Any] = {
        "accounts": accounts,
        "changed_pages": changed,
        "requests_per_s_limit": REQUESTS_PER_S,
        "scanned": last["scanned"],
        "requests": last["requests"],
        "requests_by_kind": last["by_kind"],
        "requests_lower_bound": lower_bound,
        "requests_over_bound": last["requests"] - lower_bound,
        "bound_s": round(bound_s, 1),
        "seconds": seconds["median"],
        "seconds_range": [seconds["min"], seconds["max"]],
        "runs": seconds["runs"],
        "bound_over_seconds": round(bound_s / seconds["median"], 3),
        "failed_requests": sum(run["failed"] for run in runs),
        "status_429": sum(run["status_429"] for run in runs),
        "page_errors": sum(run["load_errors"] + run["write_errors"] for run in runs),
    }
    out["targets"] = {
        "requests_at_bound": all(
            run["by_kind"].get("query", 0) == math.ceil(accounts / 100) and run["by_kind"].get("page_update") == changed
            for run in runs
        ),
        "zero_failed_requests": out["failed_requests"] == 0 and out["page_errors"] == 0,
        "scanned_all": all(run["scanned"] == accounts for run in runs),
    }
    return out


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--changed", type=int, default=50, help="Pages whose score changes in each timed scan.")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if args.accounts < 1 or args.runs < 1 or not 0 < args.changed <= args.accounts:
        parser.error("--accounts and --runs must be at least 1, --changed between 1 and --accounts")
    with tempfile.TemporaryDirectory(prefix="csm-bench-notion-") as scratch:
        measured = asyncio.run(measure(args.accounts, args.changed, args.runs, Path(scratch)))
    emit("notion", figures(args.accounts, args.changed, measured))


if __name__ == "__main__":
    main()
