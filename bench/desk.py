"""The review desk's book page on a large store: how long `GET /` takes for a lead and for a rep.

`python -m bench.desk --accounts 100000 [--runs 5]`

Generates N active accounts with a day of scores from 8 days ago (so trends and movement exist), then runs a
whole-book daily scan (`health_scan`, summary) as the scheduler does, which keeps the desk's book tables as it
writes its scores. Then builds the desk on that store, signs in through the login form and times: the first
book view after that fresh scan, and K views each of the whole book as a lead, the book filtered (RED, renewing
within 90 days, a search) and a rep's book. Last, the same store as an older version left it (the scores, but
empty book tables): the first view then waits for the desk's catch-up of the score history. Target: every view
under a second; first views in wall and CPU seconds (the desk runs in this process).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from time import perf_counter, process_time
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, delete

from bench.common import MIN_RUNS, emit, stats
from src.app.agents.runtime import open_agent
from src.app.analysis.scan import score_book
from src.app.config import CSMSettings
from src.app.context import scorer_from_settings
from src.app.data.sample_book import generate_accounts
from src.app.desk.app import create_app
from src.app.desk.auth import hash_password
from src.app.logging_setup import configure_logging
from src.app.tools.store.sql import SQLStore
from src.app.tools.store.sql_review import ReviewStore
from src.app.tools.store.sql_tables import ACCOUNT_HEALTH, BOOK_DAYS, DESK_MARKS

TARGET_ACCOUNTS = 100_000
TARGET_PAGE_S = 1.0
LEAD = ("lead@example.com", "bench-password")


async def prepare(settings: CSMSettings, accounts: int) -> str:
    """The store: accounts, scores from 8 days ago, a lead; returns a rep who owns accounts."""
    now = datetime.now(UTC)
    records = generate_accounts(accounts, as_of=now.date())
    for record in records:
        record["status"] = "active"
    store = SQLStore(settings.resolved_database_url)
    scorer = scorer_from_settings(settings)
    try:
        await store.upsert_accounts(records)
        earlier = score_book(records, scorer=scorer, previous={}, now=now - timedelta(days=8), tz=settings.tz)
        await store.save_scores(earlier.scores)
        await ReviewStore(store).add_user(LEAD[0], role="lead", password_hash=hash_password(LEAD[1]))
        rep = str(records[0]["rep_email"])
        await ReviewStore(store).add_user(rep, role="rep", password_hash=hash_password(LEAD[1]))
    finally:
        await store.aclose()
    return rep


async def daily_scan(settings: CSMSettings) -> dict[str, Any]:
    """The scheduler's whole-book scan; what it reported."""
    async with open_agent(settings) as (agent, _):
        result: dict[str, Any] = await agent.execute({"type": "health_scan", "summary": True}, {})
    return result


def forget_book(settings: CSMSettings) -> None:
    """Leave the store as an older version left it: the score history, but empty book tables."""
    engine = create_engine(settings.resolved_database_url)
    with engine.begin() as connection:
        for table in (ACCOUNT_HEALTH, BOOK_DAYS, DESK_MARKS):
            connection.execute(delete(table))
    engine.dispose()


def first_view(settings: CSMSettings) -> dict[str, float]:
    """A desk started on the store, a lead signed in: the first book view's wall and CPU seconds, and the wall
    seconds from the desk's start (its warm-up catch-up begins then) to that view's end."""
    started = perf_counter()
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        sign_in(client, LEAD[0])
        cpu = process_time()
        wall = timed_get(client, "/")
        cpu_s, from_start_s = process_time() - cpu, perf_counter() - started
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu_s, 3), "from_desk_start_s": round(from_start_s, 3)}


def sign_in(client: TestClient, email: str) -> None:
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    response = client.post(
        "/login", data={"email": email, "password": LEAD[1], "csrf_token": token.group(1)}, follow_redirects=False
    )
    assert response.status_code == 303, response.text


def timed_get(client: TestClient, path: str) -> float:
    started = perf_counter()
    response = client.get(path)
    elapsed = perf_counter() - started
    assert response.status_code == 200 and "Riskiest accounts" in response.text, response.status_code
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=TARGET_ACCOUNTS)
    parser.add_argument("--runs", type=int, default=MIN_RUNS)
    args = parser.parse_args()
    configure_logging(level="WARNING")
    with tempfile.TemporaryDirectory(prefix="bench-desk-") as folder:
        settings = CSMSettings(data_dir=Path(folder), database_url=None, _env_file=None)  # type: ignore[call-arg]
        started = perf_counter()
        rep = asyncio.run(prepare(settings, args.accounts))
        prepare_s = perf_counter() - started
        started = perf_counter()
        scan = asyncio.run(daily_scan(settings))
        scan_s = perf_counter() - started
        after_scan = first_view(settings)
        pages = {"lead_book": "/", "lead_filtered": "/?rag=RED&renewal=90&q=a"}
        samples: dict[str, list[float]] = {name: [] for name in [*pages, "rep_book"]}
        with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
            sign_in(client, LEAD[0])
            for _ in range(args.runs):
                for name, path in pages.items():
                    samples[name].append(timed_get(client, path))
        with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
            sign_in(client, rep)
            for _ in range(args.runs):
                samples["rep_book"].append(timed_get(client, "/"))
        forget_book(settings)
        catch_up = first_view(settings)
    figures: dict[str, Any] = {
        "accounts": args.accounts,
        "prepare_s": round(prepare_s, 2),
        "scan_s": round(scan_s, 2),
        "scanned": scan.get("scanned_count"),
        "first_view_after_scan": after_scan,
        "first_view_catch_up_older_store": catch_up,
        **{f"{name}_s": stats(values) for name, values in samples.items()},
    }
    figures["targets"] = {f"{name}_under_{TARGET_PAGE_S:g}s": median(v) < TARGET_PAGE_S for name, v in samples.items()}
    figures["targets"]["first_view_after_scan_under_1s"] = after_scan["wall_s"] < TARGET_PAGE_S
    emit("desk", figures)


if __name__ == "__main__":
    main()
