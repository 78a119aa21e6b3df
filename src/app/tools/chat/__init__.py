"""The `ChatPoster` capability: post a message to a team chat space (threaded per account)."""

from __future__ import annotations

from typing import Protocol

from src.app.schemas import ChatMessage


class ChatPoster(Protocol):
    """Posts chat messages; idempotent by key."""

    async def post(self, message: ChatMessage, *, idempotency_key: str) -> str:
        """Post `message` and return the message id."""
        ...
