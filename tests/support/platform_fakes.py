"""Plain recording classes with exactly the seed platform's service shapes (no mocks): what the agent handed them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.support.fakes import DEFAULT_REPLIES


class PlatformNotion:
    """The platform's Notion CSM adapter: five methods, account dicts keyed by page `id`."""

    def __init__(self, accounts: list[dict[str, Any]]) -> None:
        self.accounts = {str(a.get("account_id") or a["id"]): dict(a) for a in accounts}
        self.health_updates: list[tuple[str, float, str]] = []
        self.qbr_pages: list[tuple[Any, str]] = []
        self.expansion_records: list[Any] = []

    async def get_account(self, account_id: str) -> dict[str, Any]:
        return dict(self.accounts.get(account_id, {}))

    async def query_all_accounts(self) -> list[dict[str, Any]]:
        return [dict(a) for a in self.accounts.values()]

    async def update_health_score(self, page_id: str, score: float, rag: str) -> None:
        self.health_updates.append((page_id, score, rag))

    async def create_qbr_page(self, qbr: Any, account_name: str = "") -> str:
        self.qbr_pages.append((qbr, account_name))
        return f"qbr-page-{len(self.qbr_pages)}"

    async def create_expansion_record(self, opportunity: Any) -> str:
        self.expansion_records.append(opportunity)
        return f"expansion-record-{len(self.expansion_records)}"


@dataclass
class PlatformDraftResult:
    """The platform's DraftResult."""

    draft_id: str
    message_id: str | None = None


class PlatformGmail:
    """The platform's Gmail service: `create_draft(email, user_email=None)`; its `send_email` must never be used."""

    def __init__(self) -> None:
        self.drafts: list[tuple[Any, str | None]] = []
        self.sent: list[Any] = []

    async def create_draft(self, email: Any, user_email: str | None = None) -> PlatformDraftResult:
        for name in ("to", "subject", "body_html", "body_text", "cc", "bcc"):
            assert hasattr(email, name), name
        self.drafts.append((email, user_email))
        return PlatformDraftResult(draft_id=f"gmail-draft-{len(self.drafts)}")

    async def send_email(self, email: Any, user_email: str | None = None) -> None:
        self.sent.append(email)
        raise AssertionError("the CSM agent must never send email")


class PlatformChatService:
    """The platform's chat service: one method taking a message with `space_name`, `text`, `thread_key`."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def send_message(self, message: Any) -> dict[str, Any]:
        assert message.space_name and message.text
        self.messages.append(message)
        return {"message_id": f"chat-{len(self.messages)}"}


class PlatformEventBus:
    """The platform's event bus: `publish(stream, event)`; rejects an event without a tenant, as the platform does."""

    def __init__(self) -> None:
        self.published: list[tuple[str, Any]] = []

    async def publish(self, stream: str, event: Any) -> str:
        if not event.tenant_id:
            raise ValueError("tenant_id is required")
        assert event.call_chain and event.source_agent_id in event.call_chain
        json.dumps(event.data)
        self.published.append((stream, event))
        return f"evt-{len(self.published)}"


class PlatformLLMService:
    """The platform's LLM service: `completion(...)` -> {"content", "model", "usage"}; answers per requested schema."""

    def __init__(self, replies: dict[str, Any] | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.replies = replies or {}

    async def completion(
        self,
        messages: list[dict[str, str]],
        model: str = "reasoning",
        max_tokens: int = 4096,
        temperature: float = 0.7,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        schema = (metadata or {}).get("schema", "")
        self.calls.append({"model": model, "max_tokens": max_tokens, "temperature": temperature, "schema": schema})
        reply = self.replies.get(schema, DEFAULT_REPLIES.get(schema))
        if isinstance(reply, BaseException):
            raise reply
        return {
            "content": json.dumps(reply) if reply is not None else None,
            "model": "platform-reasoning",
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }


class PlatformSales:
    """An outside Sales agent: `execute(task, context)`; drops a payload whose idempotency key it has seen."""

    def __init__(self) -> None:
        self.tasks: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.keys: set[str] = set()

    async def execute(self, task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        self.tasks.append((task, context))
        key = task.get("idempotency_key")
        duplicate = key in self.keys
        if key:
            self.keys.add(key)
        return {"task_type": task["type"], "account_id": task["account_id"], "duplicate": duplicate}
