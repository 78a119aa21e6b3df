"""`LLMService` on the host platform's LLM service: `completion(messages, model, max_tokens, temperature, metadata)`."""

from __future__ import annotations

from typing import Any, Final, Protocol

from pydantic import BaseModel

from src.app.tools.llm import LLMReply
from src.app.tools.platform import field_of

PLATFORM_LLM_METHODS: Final = ("completion",)
SEED_TEMPERATURE: Final = 0.4
"""The temperature the seed calls its LLM service at."""


class PlatformLLMService(Protocol):
    """The platform's LLM service: one chat completion, returning `{"content", "model", "usage"}`."""

    async def completion(
        self,
        messages: list[dict[str, str]],
        model: str = "reasoning",
        max_tokens: int = 4096,
        temperature: float = 0.7,
        metadata: dict[str, Any] | None = None,
    ) -> Any:
        """Run one completion."""
        ...


class PlatformLLM:
    """`LLMService` that calls the platform's `completion` at the seed's temperature and reports its token usage."""

    def __init__(
        self,
        service: PlatformLLMService,
        *,
        model: str = "reasoning",
        max_tokens: int = 4096,
        temperature: float = SEED_TEMPERATURE,
    ) -> None:
        self._service = service
        self._model = model
        self._max_tokens = max_tokens
        self._temperature = temperature

    async def complete(self, messages: list[dict[str, str]], *, schema: type[BaseModel]) -> LLMReply:
        """One completion asking for JSON matching `schema` (named in the metadata); usage from the reply."""
        reply = await self._service.completion(
            messages,
            model=self._model,
            max_tokens=self._max_tokens,
            temperature=self._temperature,
            metadata={"agent": "customer_success", "schema": schema.__name__},
        )
        usage = field_of(reply, "usage") or {}
        content = field_of(reply, "content")
        return LLMReply(
            content=None if content is None else str(content),
            prompt_tokens=int(field_of(usage, "prompt_tokens") or field_of(usage, "input_tokens") or 0),
            completion_tokens=int(field_of(usage, "completion_tokens") or field_of(usage, "output_tokens") or 0),
            cost_usd=float(field_of(usage, "cost_usd") or 0.0),
            model=str(field_of(reply, "model") or self._model),
        )
