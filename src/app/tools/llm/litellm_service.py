"""The `LLMService` over litellm: lazy import, bounded concurrency, tenacity retries on transient errors, cost."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from types import ModuleType
from typing import Any

import structlog
from aiolimiter import AsyncLimiter
from pydantic import BaseModel, SecretStr
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from src.app.config import OFFLINE_MODEL, CSMSettings, LLMResponseFormat
from src.app.tools.llm import LLMReply
from src.app.tools.ratelimit import SharedPacer
from src.app.tools.retry_after import retry_after_seconds

_log = structlog.get_logger(__name__)

_OFFLINE_PROVIDER = OFFLINE_MODEL.partition("/")[0]
_RETRYABLE = (
    "Timeout",
    "RateLimitError",
    "APIConnectionError",
    "InternalServerError",
    "ServiceUnavailableError",
)
MAX_RETRY_AFTER_S = 60.0
"""The longest a provider's `Retry-After` may hold a retry back."""
SPACING_MARGIN = 1.01
"""Paced requests go out 1% slower than the configured rate, so timing jitter never puts one over the cap."""


class LiteLLMService:
    """Runs JSON completions through `litellm.acompletion` for any model string (default: the offline writer).

    litellm itself (~3 s to import) is loaded on the first call, never at construction or import time.
    litellm's own retries are off (`num_retries=0`, which also turns off the openai client's): transient errors
    are retried here, `max_attempts` server hits at most, waiting the longer of the backoff and the provider's
    `Retry-After`. A call keeps its concurrency slot through its backoff, so a rate-limited provider is not hit
    harder. With `requests_per_min` set, every server hit (retries included) also waits for its turn, evenly
    spaced, so a fan-out stays under the provider's rate cap instead of running into 429s whatever the latency.
    With `shared_pacer` (Celery workers) that turn comes from the ledger every worker shares instead.
    Each reply carries litellm's cost for the model, or the configured per-1k-token prices.
    """

    def __init__(
        self,
        *,
        model: str,
        api_base: str | None = None,
        api_key: SecretStr | None = None,
        timeout_s: float = 60,
        max_attempts: int = 3,
        concurrency: int = 4,
        retry_wait_s: float = 0.5,
        response_format: LLMResponseFormat = "auto",
        input_cost_per_1k_tokens: float | None = None,
        output_cost_per_1k_tokens: float | None = None,
        requests_per_min: float | None = None,
        shared_pacer: SharedPacer | None = None,
    ) -> None:
        if timeout_s <= 0 or max_attempts < 1 or concurrency < 1 or retry_wait_s < 0:
            raise ValueError("timeout_s must be > 0, max_attempts and concurrency >= 1, retry_wait_s >= 0")
        if requests_per_min is not None and requests_per_min <= 0:
            raise ValueError(f"requests_per_min must be > 0 (or None for no pacing), not {requests_per_min!r}")
        if response_format not in ("auto", "json_schema", "json_object", "none"):
            raise ValueError(f"response_format must be auto, json_schema, json_object or none, not {response_format!r}")
        self.model = model
        self._api_base = api_base
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._max_attempts = max_attempts
        self._concurrency = concurrency
        self._response_format_mode = response_format
        self._pricing = _pricing(input_cost_per_1k_tokens, output_cost_per_1k_tokens)
        self._backoff = wait_exponential_jitter(multiplier=retry_wait_s, max=retry_wait_s * 16, jitter=retry_wait_s)
        self._spacing_s = None if requests_per_min is None else 60 * SPACING_MARGIN / requests_per_min
        self._shared_pacer = shared_pacer
        self._limits: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[asyncio.Semaphore, AsyncLimiter | None]
        ] = weakref.WeakKeyDictionary()

    @classmethod
    def from_settings(cls, settings: CSMSettings, *, shared_pacer: SharedPacer | None = None) -> LiteLLMService:
        """Build the service from the `CSM_LLM_*` settings (paced by `shared_pacer` when given)."""
        return cls(
            model=settings.llm_model,
            api_base=settings.llm_api_base,
            api_key=settings.llm_api_key,
            timeout_s=settings.llm_timeout_s,
            max_attempts=settings.llm_max_attempts,
            concurrency=settings.llm_concurrency,
            response_format=settings.llm_response_format,
            input_cost_per_1k_tokens=settings.llm_input_cost_per_1k_tokens,
            output_cost_per_1k_tokens=settings.llm_output_cost_per_1k_tokens,
            requests_per_min=settings.llm_requests_per_min,
            shared_pacer=shared_pacer,
        )

    def __repr__(self) -> str:
        return f"LiteLLMService(model={self.model!r}, api_base={self._api_base!r})"

    async def complete(self, messages: list[dict[str, str]], *, schema: type[BaseModel]) -> LLMReply:
        """Run one completion asking for JSON matching `schema`; raise the last error once retries run out."""
        litellm = await asyncio.to_thread(load_litellm)  # the first import does blocking I/O: keep it off the loop
        _log.debug("llm.complete", model=self.model, messages=len(messages), schema=schema.__name__)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(tuple(getattr(litellm, name) for name in _RETRYABLE)),
            before_sleep=self._log_retry,
            reraise=True,
        )
        semaphore, pacer = self._loop_limits()
        async with semaphore:
            response: Any = await retrying(
                _paced,
                self._shared_pacer.wait if self._shared_pacer is not None else pacer,
                litellm.acompletion,
                model=self.model,
                messages=messages,
                response_format=self._response_format(litellm, schema),
                timeout=self._timeout_s,
                num_retries=0,
                drop_params=True,
                api_base=self._api_base,
                api_key=self._api_key.get_secret_value() if self._api_key else None,
                **self._pricing,
            )
        return _reply(response, self.model)

    def _loop_limits(self) -> tuple[asyncio.Semaphore, AsyncLimiter | None]:
        """The concurrency limit and request pacer for the running event loop (neither can be shared across loops)."""
        loop = asyncio.get_running_loop()
        limits = self._limits.get(loop)
        if limits is None:
            own_pacing = self._spacing_s is not None and self._shared_pacer is None
            pacer = AsyncLimiter(1, self._spacing_s) if own_pacing and self._spacing_s else None
            limits = self._limits[loop] = (asyncio.Semaphore(self._concurrency), pacer)
        return limits

    def _response_format(self, litellm: ModuleType, schema: type[BaseModel]) -> type[BaseModel] | dict[str, str] | None:
        """The schema (litellm converts it per provider), JSON mode, or nothing, as configured.

        `auto` sends the schema where litellm knows the model accepts one and JSON mode elsewhere; providers
        without JSON mode have it dropped by litellm (`drop_params=True`) and rely on the prompt and the parser.
        """
        mode = self._response_format_mode
        if mode == "auto":
            mode = "json_schema" if _supports_response_schema(litellm, self.model) else "json_object"
        if mode == "json_schema":
            return schema
        return {"type": "json_object"} if mode == "json_object" else None

    def _wait(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: the backoff, or the provider's `Retry-After` when that is longer."""
        backoff = float(self._backoff(state))
        hint = _retry_after_s(state.outcome.exception() if state.outcome else None)
        return backoff if hint is None else min(max(backoff, hint), MAX_RETRY_AFTER_S)

    def _log_retry(self, state: RetryCallState) -> None:
        """Log a retry with the error class only (provider messages may echo the request)."""
        error = state.outcome.exception() if state.outcome else None
        _log.warning("llm.retry", model=self.model, attempt=state.attempt_number, error=type(error).__name__)


def load_litellm() -> ModuleType:
    """Return litellm, imported on first use, with the offline provider registered (again if it was removed)."""
    litellm = _import_litellm()
    from src.app.tools.llm.offline.provider import register_offline_provider

    register_offline_provider()
    return litellm


@functools.cache
def _import_litellm() -> ModuleType:
    """Import litellm once: bundled cost map (no network at import), no telemetry, no debug banners."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    if hasattr(litellm, "telemetry"):
        litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


async def _paced(
    pacer: AsyncLimiter | Callable[[], Awaitable[None]] | None,
    send: Callable[..., Coroutine[Any, Any, Any]],
    **request: Any,
) -> Any:
    """One server hit, sent when the pacer (this process's, or the one every worker shares) gives it a turn."""
    if isinstance(pacer, AsyncLimiter):
        await pacer.acquire()
    elif pacer is not None:
        await pacer()
    # An empty context: litellm's background logging task keeps the context of the call that started it, which
    # would otherwise keep the calling LangGraph run (a whole-book scan's state) alive until the next call.
    return await asyncio.create_task(send(**request), context=contextvars.Context())


def _supports_response_schema(litellm: ModuleType, model: str) -> bool:
    """Whether litellm knows `model` to accept a JSON schema; the offline provider always does."""
    if model.partition("/")[0] == _OFFLINE_PROVIDER:
        return True
    try:
        return bool(litellm.supports_response_schema(model=model))
    except Exception:  # unknown model strings raise in some litellm versions: use JSON mode
        return False


def _pricing(input_per_1k: float | None, output_per_1k: float | None) -> dict[str, float]:
    """The per-token price arguments for litellm when a price is configured (the other side then costs 0)."""
    if input_per_1k is None and output_per_1k is None:
        return {}
    return {"input_cost_per_token": (input_per_1k or 0) / 1000, "output_cost_per_token": (output_per_1k or 0) / 1000}


def _retry_after_s(error: BaseException | None) -> float | None:
    """The wait in seconds a provider asked for in `retry-after-ms` or `Retry-After`, if any."""
    response = getattr(error, "response", None)
    headers: Any = getattr(error, "litellm_response_headers", None) or getattr(response, "headers", None)
    if headers is None:
        return None
    milliseconds = retry_after_seconds(headers.get("retry-after-ms"))
    return milliseconds / 1000 if milliseconds is not None else retry_after_seconds(headers.get("retry-after"))


def _reply(response: Any, model: str) -> LLMReply:
    """The text, token usage and cost (litellm's, 0 when it has no price for the model) of a `ModelResponse`."""
    usage = getattr(response, "usage", None)
    hidden = getattr(response, "_hidden_params", None) or {}
    return LLMReply(
        content=response.choices[0].message.content,
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        cost_usd=float(hidden.get("response_cost") or 0.0),
        model=str(getattr(response, "model", None) or model),
    )
