"""LLM fan-out: the quarterly QBR job for N accounts against a local OpenAI-compatible server with a rate cap.

`python -m bench.llm_fanout [--accounts 500] [--latency 1.0] [--rate-limit 600] [--rate-window 60]
[--concurrency C] [--requests-per-min R] [--runs 1]`

The server (`tests/support/openai_server.py`) answers every completion after a fixed latency and refuses
requests above `--rate-limit` per sliding `--rate-window` seconds with 429 + Retry-After. The app runs as
deployed: the real `LiteLLMService` (model `openai/<name>` + `api_base`, `CSM_LLM_CONCURRENCY` = `--concurrency`,
`CSM_LLM_REQUESTS_PER_MIN` = `--requests-per-min`), the real agent on a SQLite store holding N generated
active accounts, and the scheduler's `csm_quarterly_qbr` job: one completion, one QBR page and one rep draft
per account.

The ideal: a client that never exceeds the cap's rate sends at most `rate-limit / rate-window` requests a
second, so N QBRs take at least N / that rate seconds (50 s for 500 at 600/min). Keeping that pace with a fixed
latency needs at least rate × latency completions in flight (10 at 1 s). By default the service is paced at
the cap and given twice that concurrency, the configuration README recommends; `--requests-per-min 0` turns
pacing off. The figure reported is the ideal time over the measured time.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bench.common import emit, stats
from src.app.agents.customer_success.scheduler import QBR_CONCURRENCY, CSMScheduler
from src.app.agents.runtime import open_agent
from src.app.config import CSMSettings
from src.app.data.sample_book import generate_accounts
from src.app.logging_setup import configure_logging
from src.app.tools.llm.litellm_service import load_litellm
from tests.support.openai_server import OpenAIServer

MODEL = "openai/gpt-4o-mini"
"""A model litellm knows (JSON schema support, a price): the server answers as it for any name."""
API_KEY = "sk-bench-local"
JOB = "csm_quarterly_qbr"
TARGET_FRACTION = 0.9


def fanout_settings(data_dir: Path, server: OpenAIServer, args: argparse.Namespace) -> CSMSettings:
    """Embedded store and outbox in `data_dir`, the LLM pointed at the local server, ignoring any `.env`."""
    return CSMSettings(
        data_dir=data_dir,
        database_url=None,
        llm_model=MODEL,
        llm_api_base=server.url,
        llm_api_key=SecretStr(API_KEY),
        llm_concurrency=args.concurrency,
        llm_requests_per_min=args.requests_per_min or None,
        _env_file=None,
    )


async def one_run(data_dir: Path, server: OpenAIServer, args: argparse.Namespace) -> dict[str, Any]:
    """Load N active accounts into a fresh store and run the quarterly QBR job once; what it did and took."""
    settings = fanout_settings(data_dir, server, args)
    records = generate_accounts(args.accounts, as_of=datetime.now(UTC).date())
    for record in records:
        record["status"] = "active"
    async with open_agent(settings) as (agent, store):
        await store.upsert_accounts(records)
        scheduler = CSMScheduler(agent, store=store, timezone=settings.timezone, owner="bench")
        first_request = len(server.requests)
        started = time.monotonic()  # the server stamps arrivals with the same clock
        outcome = await scheduler.run_job(JOB)
        ended = time.monotonic()
        qbr_rows = len(await store.accounts_with_qbr(str(outcome.get("period")), "quarterly"))
        drafts = sum(draft.kind == "qbr" for draft in await store.list_drafts(limit=args.accounts * 2))
    requests = server.requests[first_request:]
    statuses = [request.status for request in requests]
    arrivals = sorted(request.received_at for request in requests) or [started]
    return {
        "seconds": ended - started,
        "before_first_request_s": arrivals[0] - started,
        "sending_s": arrivals[-1] - arrivals[0],
        "after_last_request_s": ended - arrivals[-1],
        "status": outcome["status"],
        "ok": outcome.get("ok", 0),
        "failed": outcome.get("failed", 0),
        "qbr_rows": qbr_rows,
        "drafts": drafts,
        "requests": len(statuses),
        "answered": statuses.count(200),
        "status_429": statuses.count(429),
        "other_errors": len(statuses) - statuses.count(200) - statuses.count(429),
        "usage": outcome.get("llm_usage", {}),
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the job `runs` times, each on a fresh store, against one server; the figures of every run."""
    configure_logging(level="ERROR")
    await asyncio.to_thread(load_litellm)  # its ~3 s import is a process start-up cost, not the job's
    results = []
    for _ in range(args.runs):
        with OpenAIServer(latency_s=args.latency, rate_limit=args.rate_limit, rate_window_s=args.rate_window) as server:
            with tempfile.TemporaryDirectory(prefix="csm-bench-llm-") as scratch:
                results.append(await one_run(Path(scratch) / "data", server, args))
            max_in_flight = server.max_in_flight
        results[-1]["max_in_flight"] = max_in_flight
    return {"runs": results}


def figures(args: argparse.Namespace, measured: dict[str, Any]) -> dict[str, Any]:
    """Headline figures: time vs the cap's ideal, lost QBRs, 429s, tokens per QBR."""
    runs = measured["runs"]
    rate_per_s = args.rate_limit / args.rate_window
    ideal_s = args.accounts / rate_per_s
    seconds = stats([run["seconds"] for run in runs], 2)
    fractions = [ideal_s / run["seconds"] for run in runs]
    last = runs[-1]
    usage = last["usage"]
    calls = usage.get("calls", 0)
    lost = max(args.accounts - min(run["qbr_rows"] for run in runs), args.accounts - min(run["drafts"] for run in runs))
    out: dict[str, Any] = {
        "accounts": args.accounts,
        "latency_s": args.latency,
        "rate_limit": args.rate_limit,
        "rate_window_s": args.rate_window,
        "llm_concurrency": args.concurrency,
        "llm_requests_per_min": args.requests_per_min or None,
        "qbr_concurrency": QBR_CONCURRENCY,
        "ideal_s": round(ideal_s, 1),
        "seconds": seconds["median"],
        "seconds_range": [seconds["min"], seconds["max"]],
        "runs": seconds["runs"],
        "fraction_of_ideal": round(ideal_s / seconds["median"], 3),
        "fraction_range": [round(min(fractions), 3), round(max(fractions), 3)],
        "qbrs_per_min": round(args.accounts / seconds["median"] * 60, 1),
        "timeline_s": {
            "before_first_request": round(last["before_first_request_s"], 2),
            "first_to_last_request": round(last["sending_s"], 2),
            "ideal_first_to_last": round((args.accounts - 1) / rate_per_s, 2),
            "after_last_request": round(last["after_last_request_s"], 2),
        },
        "qbr_rows": last["qbr_rows"],
        "drafts": last["drafts"],
        "lost_qbrs": lost,
        "failed_tasks": sum(run["failed"] for run in runs),
        "requests": last["requests"],
        "status_429": sum(run["status_429"] for run in runs),
        "other_http_errors": sum(run["other_errors"] for run in runs),
        "max_in_flight": max(run["max_in_flight"] for run in runs),
        "llm_calls": calls,
        "prompt_tokens_per_qbr": round(usage.get("prompt_tokens", 0) / max(1, last["qbr_rows"]), 1),
        "completion_tokens_per_qbr": round(usage.get("completion_tokens", 0) / max(1, last["qbr_rows"]), 1),
        "cost_usd_per_qbr": round(usage.get("cost_usd", 0.0) / max(1, last["qbr_rows"]), 6),
    }
    out["targets"] = {
        "fraction_of_ideal": out["fraction_of_ideal"] >= TARGET_FRACTION,
        "zero_lost_qbrs": lost == 0 and out["failed_tasks"] == 0,
        "no_429_storm": out["status_429"] <= out["runs"] * args.concurrency,  # at most one refusal per slot
    }
    return out


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--latency", type=float, default=1.0, help="The server's fixed latency per completion, s.")
    parser.add_argument("--rate-limit", type=int, default=600, help="Completions the server accepts per window.")
    parser.add_argument("--rate-window", type=float, default=60.0, help="The rate limit's sliding window, s.")
    parser.add_argument("--concurrency", type=int, default=None, help="Default: 2 × rate × latency.")
    parser.add_argument("--requests-per-min", type=float, default=None, help="Default: the cap; 0: not paced.")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    if args.accounts < 1 or args.runs < 1 or args.latency < 0 or args.rate_limit < 1 or args.rate_window <= 0:
        parser.error("--accounts, --runs and --rate-limit must be at least 1, --latency >= 0, --rate-window > 0")
    if args.concurrency is None:
        args.concurrency = 2 * max(1, math.ceil(args.rate_limit / args.rate_window * args.latency))
    if args.requests_per_min is None:
        args.requests_per_min = args.rate_limit * 60 / args.rate_window
    measured = asyncio.run(measure(args))
    emit("llm_fanout", figures(args, measured))


if __name__ == "__main__":
    main()
