"""A desk store worth looking at: the sample book with 90 days of score history, then a scan in hold mode."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from src.app.agents.runtime import open_agent
from src.app.analysis.signals import AccountDataError, signals_from_record
from src.app.config import CSMSettings
from src.app.context import scorer_from_settings
from src.app.data.sample_book import load_sample_book
from src.app.desk.auth import hash_password
from src.app.desk.review import open_review

T = TypeVar("T")
HISTORY_DAYS = (91, 63, 35, 14, 7)
USERS = {
    "lead@example.com": ("lead", "lead-password"),
    "priya.patel@example.com": ("rep", "rep-password"),
    "jordan.lee@example.com": ("rep", "rep-password"),
}


async def seed_desk(settings: CSMSettings, *, qbrs: int = 2) -> None:
    """Accounts, past scores (so charts and movement have something to show), a held scan, QBRs and users."""
    rng = random.Random(15)
    scorer = scorer_from_settings(settings)
    now = datetime.now(UTC)
    async with open_agent(settings) as (agent, store):
        book = load_sample_book(today=now.date())
        await store.upsert_accounts(book)
        for days in HISTORY_DAYS:
            scores = []
            for record in book:
                try:
                    signals = signals_from_record(record, now=now, tz=settings.tz)
                except (AccountDataError, ValueError):
                    continue
                score = scorer.score(signals, str(record["account_id"]), computed_at=now - timedelta(days=days))
                value = max(1.0, min(100.0, score.score + rng.uniform(-4, 14) * days / 30))
                ratio = value / max(score.score, 1.0)
                breakdown = {k: round(min(v * ratio, 30), 2) for k, v in score.signal_breakdown.items()}
                rag = "GREEN" if value >= 70 else "AMBER" if value >= 40 else "RED"
                update = {"score": round(value, 1), "rag": rag, "signal_breakdown": breakdown}
                scores.append(score.model_copy(update=update))
            await store.save_scores(scores)
        await agent.execute({"type": "health_scan"}, {})
        for record in sorted(book, key=lambda r: -float(r.get("arr") or 0))[:qbrs]:
            await agent.execute({"type": "generate_qbr", "account_id": record["account_id"]}, {})
            await agent.execute({"type": "check_expansion", "account_id": record["account_id"]}, {})
    async with open_review(settings) as review:
        for email, (role, password) in USERS.items():
            await review.records.add_user(email, role=role, password_hash=hash_password(password))  # type: ignore[arg-type]


def run_apart(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on its own loop in a worker thread (Playwright's sync API owns this thread's loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def seed(settings: CSMSettings) -> CSMSettings:
    run_apart(seed_desk(settings))
    return settings
