"""The offline writer served through litellm as the custom provider `offline/...` (answers come from `answers`)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any

from src.app.config import OFFLINE_MODEL
from src.app.tools.llm.offline.answers import estimated_tokens, message_text, write_answer

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # must precede the import: no cost-map download

import litellm  # noqa: E402
from litellm.llms.custom_llm import CustomLLM  # noqa: E402
from litellm.types.utils import ModelResponse, Usage  # noqa: E402

OFFLINE_PROVIDER = OFFLINE_MODEL.partition("/")[0]


class OfflineWriter(CustomLLM):
    """litellm handler for `offline/<anything>`: schema-valid JSON written from the prompt's fenced facts."""

    def completion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        """Answer a synchronous completion."""
        return _respond(kwargs)

    async def acompletion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        """Answer an asynchronous completion (no I/O happens, so this is `completion`)."""
        return _respond(kwargs)


def register_offline_provider() -> None:
    """Add the offline provider to `litellm.custom_provider_map` once, keeping any other entries."""
    if not any(item.get("provider") == OFFLINE_PROVIDER for item in litellm.custom_provider_map):
        litellm.custom_provider_map.append({"provider": OFFLINE_PROVIDER, "custom_handler": OfflineWriter()})


def _respond(kwargs: Mapping[str, Any]) -> ModelResponse:
    """Build litellm's response object around the written answer, with usage estimated at ~4 chars a token."""
    messages = list(kwargs.get("messages") or [])
    optional_params = kwargs.get("optional_params") or {}
    content = write_answer(messages, optional_params.get("response_format"))
    prompt_tokens = estimated_tokens("".join(message_text(message) for message in messages))
    completion_tokens = estimated_tokens(content)
    return ModelResponse(
        id="offline-" + hashlib.sha256(content.encode()).hexdigest()[:24],
        model=f"{OFFLINE_PROVIDER}/{kwargs.get('model') or OFFLINE_MODEL.partition('/')[2]}",
        choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        usage=Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        ),
    )
