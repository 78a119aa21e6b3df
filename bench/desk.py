"""The review desk's book page on a large store: how long `GET /` takes for a lead and for a rep.

`python -m bench.desk --accounts 100000 [--runs 5]`

Generates N active accounts, writes two days of scores (a week apart, so trends and movement exist), builds the
desk on that store and signs in through the login form; then times the first book view (which reads the new
score history into the desk's `account_health` table once), and K views each of: the whole book as a lead,
the book filtered (RED, renewing within 90 days, a search), and a rep's book. Target: under a second each.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from time import perf_counter
from typing import Any

from fastapi.testclient import TestClient

from bench.common import MIN_RUNS, emit, stats
from src.app.analysis.scan import score_book
from src.app.config import CSMSettings
from src.app.context import scorer_from_settings
from src.app.data.sample_book import generate_accounts
from src.app.desk.app import create_app
from src.app.desk.auth import hash_password
from src.app.logging_setup import configure_logging
from src.app.tools.store.sql import SQLStore
from src.app.tools.store.sql_review import ReviewStore

TARGET_ACCOUNTS = 100_000
TARGET_PAGE_S = 1.0
LEAD = ("lead@example.com", "bench-password")


async def prepare(settings: CSMSettings, accounts: int) -> str:
    """The store: accounts, scores from 8 days ago and from today, a lead; returns a rep who owns accounts."""
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
        previous = {score.account_id: score for score in earlier.scores}
        today = score_book(records, scorer=scorer, previous=previous, now=now, tz=settings.tz)
        await store.save_scores(today.scores)
        await ReviewStore(store).add_user(LEAD[0], role="lead", password_hash=hash_password(LEAD[1]))
        rep = str(records[0]["rep_email"])
        await ReviewStore(store).add_user(rep, role="rep", password_hash=hash_password(LEAD[1]))
    finally:
        await store.aclose()
    return rep


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
        pages = {"lead_book": "/", "lead_filtered": "/?rag=RED&renewal=90&q=a"}
        samples: dict[str, list[float]] = {name: [] for name in [*pages, "rep_book"]}
        with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
            sign_in(client, LEAD[0])
            first_view_s = timed_get(client, "/")
            for _ in range(args.runs):
                for name, path in pages.items():
                    samples[name].append(timed_get(client, path))
        with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
            sign_in(client, rep)
            for _ in range(args.runs):
                samples["rep_book"].append(timed_get(client, "/"))
    figures: dict[str, Any] = {
        "accounts": args.accounts,
        "prepare_s": round(prepare_s, 2),
        "first_view_s": round(first_view_s, 3),
        **{f"{name}_s": stats(values) for name, values in samples.items()},
    }
    figures["targets"] = {f"{name}_under_{TARGET_PAGE_S:g}s": median(v) < TARGET_PAGE_S for name, v in samples.items()}
    emit("desk", figures)


if __name__ == "__main__":
    main()
