"""Draft review: statuses, audited transitions, idempotent approval, hold mode and false-alarm feedback."""

from __future__ import annotations

from datetime import timedelta

import pytest

from src.app.config import CSMSettings
from src.app.context import CSMContext
from src.app.desk.review import ReviewError, label_for, open_review, text_to_html
from src.app.nodes.alerts import alert_statuses
from src.app.schemas import CSMHealthScore
from src.app.tools.store.sql import SQLStore
from src.app.tools.store.sql_review import FALSE_ALARM, FeedbackRow, ReviewStore
from tests.conftest import NOW


def outbox_files(settings: CSMSettings) -> list[str]:
    folder = settings.data_dir / "outbox" / "drafts"
    return sorted(p.stem for p in folder.glob("*.eml")) if folder.exists() else []


async def test_hold_mode_puts_exactly_the_approved_drafts_in_the_outbox_each_once(scanned_hold: CSMSettings) -> None:
    assert outbox_files(scanned_hold) == []
    async with open_review(scanned_hold) as review:
        held = await review.records.drafts(status="pending")
        assert len(held) >= 3 and all(d.location is None for d in held)
        first, second, third = held[:3]
        assert (await review.approve(first.draft_id, by="lead@example.com")).delivered
        again = await review.approve(first.draft_id, by="lead@example.com")
        assert not again.changed and not again.delivered
        edited = await review.edit(
            second.draft_id, by="lead@example.com", subject="Call them today", body_text="Hi,\n\nplease call."
        )
        rejected = await review.reject(third.draft_id, by="lead@example.com", reason="false alarm")
        with pytest.raises(ReviewError):
            await review.approve(third.draft_id, by="lead@example.com")
        with pytest.raises(ReviewError):
            await review.reject(first.draft_id, by="lead@example.com", reason="wrong owner")
        audit = await review.records.store.list_audit(artifact="review", limit=50)
        feedback = await review.records.feedback(label=FALSE_ALARM)
    assert outbox_files(scanned_hold) == sorted([first.draft_id, second.draft_id])
    assert edited.draft.status == "edited" and edited.draft.subject == "Call them today"
    eml = (scanned_hold.data_dir / "outbox" / "drafts" / f"{second.draft_id}.eml").read_text()
    assert "Call them today" in eml and "please call." in eml and "X-Unsent: 1" in eml
    assert rejected.draft.status == "rejected" and rejected.draft.location is None
    assert sorted(e.artifact for e in audit) == ["review:approved", "review:edited", "review:rejected"]
    assert {e.target for e in audit} == {"lead@example.com"}
    assert [(f.draft_id, f.risk_state is not None) for f in feedback] == [(third.draft_id, True)]


async def test_a_second_scan_the_same_day_holds_no_new_draft(scanned_hold: CSMSettings) -> None:
    from src.app.agents.runtime import open_agent

    async with open_review(scanned_hold) as review:
        before = len(await review.records.drafts(limit=1000))
    async with open_agent(scanned_hold) as (agent, _):
        await agent.execute({"type": "health_scan"}, {})
    async with open_review(scanned_hold) as review:
        assert len(await review.records.drafts(limit=1000)) == before
    assert outbox_files(scanned_hold) == []


def red(account_id: str, day_offset: int = 0) -> CSMHealthScore:
    return CSMHealthScore(
        account_id=account_id,
        score=20,
        rag="RED",
        churn_risk_level="critical",
        signal_breakdown={},
        computed_at=NOW + timedelta(days=day_offset),
    )


async def test_a_false_alarm_holds_alerts_for_the_same_risk_state_within_the_cooldown(
    ctx: CSMContext, store: SQLStore
) -> None:
    await store.record_alert(
        "a1", "AMBER/high", idempotency_key="churn:a1:AMBER/high:earlier", at=NOW - timedelta(days=8)
    )
    assert (await alert_statuses(ctx, [red("a1")]))["a1"] == "due"
    records = ReviewStore(store)
    await records.record_feedback(
        FeedbackRow(
            account_id="a1",
            draft_id="d1",
            kind="churn_alert",
            label=FALSE_ALARM,
            reason="false alarm",
            risk_state="RED/critical",
            by="lead@example.com",
            at=NOW - timedelta(days=2),
        )
    )
    assert await alert_statuses(ctx, [red("a1"), red("a2")]) == {"a1": "cooldown", "a2": "due"}
    later = CSMContext(**{**ctx.__dict__, "clock": lambda: NOW + timedelta(days=6)})
    assert (await alert_statuses(later, [red("a1")]))["a1"] == "due"


def test_reasons_become_labels_and_edits_are_escaped() -> None:
    assert label_for("False  alarm") == FALSE_ALARM
    assert label_for("already handled") == "already_handled"
    assert label_for("customer on holiday") == "other"
    assert "<script>" not in text_to_html("<b>", "a <script>\n\nb")
