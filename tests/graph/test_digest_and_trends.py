"""Daily digests on the sample book (one per owner per day, idempotent) and a simulated week with a fall."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from src.app.agents.base import AgentRegistration
from src.app.agents.customer_success import CustomerSuccessAgent
from src.app.agents.customer_success.scheduler import CSMScheduler
from src.app.analysis.health import CSMHealthScorer
from src.app.config import CSMSettings
from src.app.context import CSMContext
from src.app.data.sample_book import load_sample_book
from src.app.documents.wording import lint_subject_body, lint_text
from src.app.tools.llm import LLMReply
from src.app.tools.llm.offline.answers import _WRITERS, _facts
from src.app.tools.store.sql import SQLStore
from tests.support.fakes import RecordingChat, RecordingEvents, RecordingMail

NOW = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class WriterLLM:
    """The offline writer called directly (no litellm round trip)."""

    async def complete(self, messages: list[dict[str, str]], *, schema: type[BaseModel]) -> LLMReply:
        content = json.dumps(_WRITERS[schema.__name__](_facts(messages)))
        return LLMReply(content=content, prompt_tokens=1, completion_tokens=1, model="offline")


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[CustomerSuccessAgent, SQLStore, RecordingMail, Clock]]:
    store = SQLStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
    await store.upsert_accounts(load_sample_book(today=NOW.date()))
    mail, clock = RecordingMail(), Clock(NOW)
    settings = CSMSettings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    context = CSMContext(
        settings=settings,
        store=store,
        llm=WriterLLM(),
        mail=mail,
        chat=RecordingChat(),
        events=RecordingEvents(),
        scorer=CSMHealthScorer(),
        clock=clock,
    )
    registration = AgentRegistration(agent_id="csm", name="CustomerSuccess", version="1.0", capabilities=[])
    yield CustomerSuccessAgent.from_context(registration, context), store, mail, clock
    await store.aclose()


def _drafts(mail: RecordingMail, kind: str) -> list[Any]:
    return [message for message, _, k in mail.drafts.values() if k == kind]


async def test_every_owner_with_at_risk_accounts_gets_one_digest_a_day(world: Any) -> None:
    agent, store, mail, clock = world
    scheduler = CSMScheduler(agent, store=store, timezone="UTC", clock=clock)
    first = await scheduler.run_daily_health_scan()
    digests = _drafts(mail, "digest")
    latest = await store.latest_scores()
    records = {r["account_id"]: r for r in await store.load_accounts()}
    alerted = {a.account_id for a in await store.list_alerts(limit=1000)}
    owners = {
        str(records[i]["rep_email"]).lower()
        for i, s in latest.items()
        if s.rag in ("RED", "AMBER") and i not in alerted and i in records
    }
    assert owners and sorted(d.to for d in digests) == sorted(owners)
    assert first["digests"] == len(owners) and first["alerts_held_back"] > 0
    for draft in digests:
        assert lint_text(draft.body_text) == [], draft.body_text
        assert lint_subject_body(draft.subject, draft.body_text) == []
        assert "held back" in draft.body_text and "Hi " in draft.body_text
    again = await agent.execute({"type": "health_scan", "summary": True, "digest": True}, {})
    assert again["digests"] == 0 and again["digests_existing"] == len(owners)
    assert len(_drafts(mail, "digest")) == len(digests)


async def test_a_simulated_week_with_a_fall_is_reported_by_the_alert_and_the_qbr(world: Any) -> None:
    agent, store, mail, clock = world
    fall = {
        "usage_trend": "declining",
        "login_frequency_days": 30,
        "feature_adoption_rate": 0.1,
        "nps_score": 2,
        "invoice_payment_status": "overdue_60",
        "stakeholder_engagement": "low",
        "seats_utilization_rate": 0.2,
        "days_since_last_interaction": 60,
        "escalation_count_90_days": 4,
    }
    scores = []
    for day in range(8):
        clock.now = NOW - timedelta(days=7 - day)
        task: dict[str, Any] = {"type": "health_scan", "account_ids": ["acct-0007"]}
        if day == 7:
            task |= {"signals": fall, "days_to_renewal": 20}
        result = await agent.execute(task, {})
        scores.append(result["health_scores"][0]["score"])
    week_ago, now = round(scores[0]), round(scores[-1])
    assert now < week_ago - 10 and now < 40, scores
    [alert] = _drafts(mail, "churn_alert")
    assert f"Down {week_ago - now} points in 7 days (from {week_ago} on 25 Nov 2026)" in alert.body_text
    assert f"{now}/100" in alert.subject and f"{now}/100" in alert.body_text
    qbr = await agent.execute({"type": "generate_qbr", "account_id": "acct-0007", "period": "Q4 2026"}, {})
    assert "error" not in qbr, qbr
    [draft] = _drafts(mail, "qbr")
    assert "to date" in draft.subject and ".pptx" in draft.body_text
    assert lint_text(draft.body_text) == [] and lint_subject_body(draft.subject, draft.body_text) == []


async def test_the_qbr_reports_the_change_since_last_quarters_close_after_a_simulated_week(world: Any) -> None:
    """Last quarter's close is seeded (a scan on 30 Sep), then a week of scans ends in a fall: the QBR compares
    the score now with the close of Q3, not with this morning's scan, in the draft, its summary and the document."""
    agent, store, mail, clock = world
    clock.now = datetime(2026, 9, 30, 7, 0, tzinfo=UTC)
    closed = await agent.execute({"type": "health_scan", "account_ids": ["acct-0007"]}, {})
    q3_close = round(closed["health_scores"][0]["score"])
    fall = {"usage_trend": "declining", "login_frequency_days": 30, "feature_adoption_rate": 0.1, "nps_score": 2}
    for day in range(8):
        clock.now = NOW - timedelta(days=7 - day)
        task: dict[str, Any] = {"type": "health_scan", "account_ids": ["acct-0007"]}
        result = await agent.execute(task | ({"signals": fall} if day == 7 else {}), {})
    now = round(result["health_scores"][0]["score"])
    assert now < q3_close - 10, (q3_close, now)
    clock.now = NOW + timedelta(hours=1)  # the 08:00 QBR, an hour after the scan
    qbr = await agent.execute({"type": "generate_qbr", "account_id": "acct-0007", "period": "Q4 2026"}, {})
    assert "error" not in qbr, qbr
    [draft] = _drafts(mail, "qbr")
    change = f"Down {q3_close - now} points in Q4 2026 to date (from {q3_close} at the close of Q3 2026)."
    assert f"({now}/100," in draft.subject and change in draft.body_text, draft.body_text
    assert "unchanged" not in draft.body_text.lower()
    summary = qbr["qbr"]["health_summary"]
    assert f"{now}/100" in summary and str(q3_close) in summary and f"{q3_close - now} points" in summary, summary
