"""Fixtures of the review desk tests: a store holding the sample book, a scan's held drafts, desk users."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from src.app.agents.runtime import open_agent
from src.app.config import CSMSettings
from src.app.data.sample_book import load_sample_book
from tests.conftest import NOW


def hold_settings(tmp_path: Path, mode: str = "hold") -> CSMSettings:
    return CSMSettings(data_dir=tmp_path / "data", database_url=None, draft_review=mode, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
async def scanned_hold(tmp_path: Path) -> AsyncIterator[CSMSettings]:
    """A store with the sample book, scanned once in hold mode (its churn alerts wait for review)."""
    settings = hold_settings(tmp_path)
    async with open_agent(settings) as (agent, store):
        await store.upsert_accounts(load_sample_book(today=NOW.date()))
        result = await agent.execute({"type": "health_scan"}, {})
        assert result["alerts_dispatched"] > 0
    yield settings


LEAD = ("lead@example.com", "lead-password")
REP = ("priya.patel@example.com", "rep-password")
"""A lead, and a rep who owns some of the sample book's accounts."""


@pytest.fixture
async def desk_settings(scanned_hold: CSMSettings) -> CSMSettings:
    """The scanned hold-mode store with a lead and a rep who may sign in."""
    from src.app.desk.auth import hash_password
    from src.app.desk.review import open_review

    async with open_review(scanned_hold) as review:
        await review.records.add_user(LEAD[0], role="lead", password_hash=hash_password(LEAD[1]))
        await review.records.add_user(REP[0], role="rep", password_hash=hash_password(REP[1]))
    return scanned_hold
