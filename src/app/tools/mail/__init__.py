"""The `MailDrafts` capability: create email drafts for a person to review. Nothing here can send."""

from __future__ import annotations

from typing import Protocol

from src.app.schemas import DraftResult, EmailMessage


class MailDrafts(Protocol):
    """Creates drafts only; idempotent by key (the same key returns the existing draft)."""

    async def create_draft(
        self,
        message: EmailMessage,
        *,
        idempotency_key: str,
        account_id: str | None = None,
        kind: str = "email",
    ) -> DraftResult:
        """Save `message` as a draft and return its id."""
        ...
