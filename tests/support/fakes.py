"""Small fakes that implement the capability Protocols and record what they were asked to do."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pydantic import BaseModel

from src.app.schemas import ChatMessage, DraftResult, EmailMessage
from src.app.tools.llm import LLMReply
from src.app.tools.store.sql import SQLStore

Reply = str | BaseException | Callable[[list[dict[str, str]]], str]


class ScriptedLLM:
    """Answers from a script per schema name (strings, exceptions or functions of the messages), in order.

    When a schema's script runs out, its last entry repeats. Every call is recorded.
    """

    def __init__(self, script: Mapping[str, list[Reply]] | None = None) -> None:
        self.script = {name: list(replies) for name, replies in (script or {}).items()}
        self.calls: list[tuple[str, list[dict[str, str]]]] = []

    async def complete(self, messages: list[dict[str, str]], *, schema: type[BaseModel]) -> LLMReply:
        self.calls.append((schema.__name__, messages))
        replies = self.script.get(schema.__name__) or [json.dumps(DEFAULT_REPLIES[schema.__name__])]
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if isinstance(reply, BaseException):
            raise reply
        text = reply(messages) if callable(reply) else reply
        return LLMReply(content=text, prompt_tokens=11, completion_tokens=7, model="scripted")


DEFAULT_REPLIES: dict[str, dict[str, Any]] = {
    "ChurnNarrative": {
        "churn_narrative": "Scripted narrative.",
        "recommended_actions": ["Call the sponsor."],
    },
    "QBRNarrative": {
        "health_summary": "Scripted summary.",
        "roi_highlights": ["Saved time."],
        "adoption_commentary": "Good use of reports.",
        "expansion_next_steps": ["Discuss seats."],
        "risks": ["Renewal soon."],
    },
    "ExpansionPitches": {
        "opportunities": [
            {"opportunity_type": "seats", "recommended_talk_track": "Scripted seats pitch."},
            {"opportunity_type": "module", "recommended_talk_track": "Scripted module pitch."},
            {"opportunity_type": "integration", "recommended_talk_track": "Scripted integration pitch."},
        ]
    },
    "AdoptionInsights": {"summary": "Scripted adoption summary.", "recommendations": ["Enable workflows."]},
}


class RecordingMail:
    """A MailDrafts that keeps drafts in memory, idempotent by key."""

    def __init__(self) -> None:
        self.drafts: dict[str, tuple[EmailMessage, str | None, str]] = {}

    async def create_draft(
        self,
        message: EmailMessage,
        *,
        idempotency_key: str,
        account_id: str | None = None,
        kind: str = "email",
    ) -> DraftResult:
        created = idempotency_key not in self.drafts
        self.drafts.setdefault(idempotency_key, (message, account_id, kind))
        stored = self.drafts[idempotency_key][0]
        return DraftResult(draft_id=f"d-{idempotency_key}", to=stored.to, subject=stored.subject, created=created)


class RecordingChat:
    """A ChatPoster that records messages; optionally fails every post."""

    def __init__(self, fail_with: BaseException | None = None) -> None:
        self.messages: dict[str, ChatMessage] = {}
        self.fail_with = fail_with

    async def post(self, message: ChatMessage, *, idempotency_key: str) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.messages.setdefault(idempotency_key, message)
        return f"m-{idempotency_key}"


class RecordingEvents:
    """An EventBus that records events per stream, idempotent by key."""

    def __init__(self) -> None:
        self.events: dict[str, tuple[str, dict[str, Any]]] = {}

    async def publish(self, stream: str, event: Mapping[str, Any], *, idempotency_key: str) -> str:
        json.dumps(event)
        self.events.setdefault(idempotency_key, (stream, dict(event)))
        return f"e-{idempotency_key}"


class RecordingSales:
    """A Sales-side executor that records hand-off payloads."""

    def __init__(self) -> None:
        self.tasks: list[tuple[dict[str, Any], dict[str, Any]]] = []

    async def execute(self, task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        self.tasks.append((task, context))
        return {"task_type": task["type"], "account_id": task["account_id"], "confidence": task["confidence"]}


HEALTHY: dict[str, Any] = {
    "feature_adoption_rate": 0.9,
    "usage_trend": "growing",
    "login_frequency_days": 2,
    "days_since_last_interaction": 10,
    "stakeholder_engagement": "high",
    "nps_score": 9,
    "invoice_payment_status": "current",
    "seats_utilization_rate": 0.85,
    "open_ticket_count": 0,
    "avg_ticket_sentiment": "positive",
    "escalation_count_90_days": 0,
}

AT_RISK: dict[str, Any] = {
    "feature_adoption_rate": 0.1,
    "usage_trend": "declining",
    "login_frequency_days": 45,
    "days_since_last_interaction": 100,
    "stakeholder_engagement": "low",
    "nps_score": 3,
    "invoice_payment_status": "overdue_60",
    "seats_utilization_rate": 0.3,
    "open_ticket_count": 4,
    "avg_ticket_sentiment": "negative",
    "escalation_count_90_days": 2,
}


def make_account(
    account_id: str, signals: Mapping[str, Any], *, renews_in_days: int = 300, **extra: Any
) -> dict[str, Any]:
    """A raw account record as the store keeps it."""
    record: dict[str, Any] = {
        "account_id": account_id,
        "name": f"Company {account_id}",
        "arr": 120_000.0,
        "plan": "professional",
        "status": "active",
        "rep_email": "rep@example.com",
        "ae_email": "ae@example.com",
        "chat_space": "#cs-test",
        "contract_end_date": (date(2026, 11, 24) + timedelta(days=renews_in_days)).isoformat(),
        **signals,
    }
    record.update(extra)
    return record


@dataclass(frozen=True)
class Fakes:
    """The recording fakes behind the `ctx` fixture, typed: tests read what they recorded without casts."""

    store: SQLStore
    llm: ScriptedLLM
    mail: RecordingMail
    chat: RecordingChat
    events: RecordingEvents
    sales: RecordingSales
