"""The `LLMService` capability: one JSON completion validated against a pydantic schema."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel


class LLMReply(BaseModel):
    """Raw text of a completion plus its token usage and cost (0 when the model's price is unknown)."""

    content: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    model: str = ""


@runtime_checkable
class LLMService(Protocol):
    """Returns the model's raw text for a chat prompt that asks for JSON matching `schema`."""

    async def complete(self, messages: list[dict[str, str]], *, schema: type[BaseModel]) -> LLMReply:
        """Run one completion; raises on transport errors after bounded retries."""
        ...
