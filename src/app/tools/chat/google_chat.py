"""Google Chat through a space's incoming webhook (httpx): threaded per account, escaped, paced and idempotent.

The webhook's `key` and `token` are secrets: they are added to the URL only inside the transport, so httpx's
request log, exceptions and our errors show the space path and never the credentials.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import structlog

from src.app.config import CSMSettings
from src.app.schemas import ChatMessage
from src.app.tools.delivery import DELIVERED, ChannelPacer, ChatPostError, DeliveryLedger, escape_chat_text, retry_delay
from src.app.tools.ratelimit import per_second_windows, shared_pacer

REPLY_OPTION = "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"
"""Reply in the thread of the same `threadKey`, or start it."""

_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_HINTS = {
    400: "Google Chat could not accept the message",
    401: "the webhook's key or token is wrong, or the webhook was deleted; check CSM_GOOGLE_CHAT_WEBHOOK_URL",
    403: "the webhook may not post to this space; check CSM_GOOGLE_CHAT_WEBHOOK_URL",
    404: "no such space or webhook; check CSM_GOOGLE_CHAT_WEBHOOK_URL",
    429: "Google Chat kept rate-limiting after the retries",
}
_SECRET_PARAMS = ("key", "token")

logger = structlog.get_logger(__name__)


class GoogleChat:
    """`ChatPoster` on a Google Chat space webhook; every account's messages share one thread (`threadKey`)."""

    def __init__(
        self,
        *,
        webhook_url: str,
        ledger: DeliveryLedger,
        pacer: ChannelPacer,
        max_attempts: int = 4,
        backoff_s: float = 1.0,
        timeout_s: float = 30.0,
    ) -> None:
        url = httpx.URL(webhook_url)
        if url.scheme not in {"http", "https"} or "/spaces/" not in url.path:
            raise ValueError(
                "CSM_GOOGLE_CHAT_WEBHOOK_URL is not a Google Chat space webhook "
                "(expected https://chat.googleapis.com/v1/spaces/<space>/messages?key=...&token=...)"
            )
        self._url = url.copy_with(query=None)
        self._secret_params = httpx.QueryParams(
            [(name, value) for name, value in url.params.multi_items() if name in _SECRET_PARAMS]
        )
        self._space = url.path.split("/spaces/", 1)[1].split("/", 1)[0]
        self._ledger = ledger
        self._pacer = pacer
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._timeout_s = timeout_s

    @classmethod
    def from_settings(cls, settings: CSMSettings) -> GoogleChat:
        """The adapter configured by `CSM_GOOGLE_CHAT_WEBHOOK_URL` and `CSM_CHAT_MESSAGES_PER_S`."""
        if settings.google_chat_webhook_url is None:
            raise ValueError("CSM_GOOGLE_CHAT_WEBHOOK_URL is not set")
        return cls(
            webhook_url=settings.google_chat_webhook_url.get_secret_value(),
            ledger=DeliveryLedger(settings.data_dir / "chat" / "google_chat.jsonl"),
            pacer=ChannelPacer(
                settings.chat_messages_per_s,
                shared=shared_pacer(settings, "chat", per_second_windows(settings.chat_messages_per_s)),
            ),
        )

    async def post(self, message: ChatMessage, *, idempotency_key: str) -> str:
        """Post `message` (escaped) in its account's thread unless this key was posted; returns the message name."""
        if not message.text.strip():
            raise ValueError(f"chat message for {message.space_name!r} has empty 'text'")
        body: dict[str, Any] = {"text": escape_chat_text(message.text)}
        if message.thread_key:
            body["thread"] = {"threadKey": message.thread_key}

        async def post_once() -> str:
            async with self._pacer.turn(self._space):
                return await self._post_with_retries(body)

        name, _ = await self._ledger.once(DELIVERED, idempotency_key, post_once, lock=self._space)
        return name

    async def _post_with_retries(self, body: dict[str, Any]) -> str:
        """POST to the webhook, retrying 429 (after Retry-After), 5xx and network errors a bounded number of times."""
        transport = _SecretQueryTransport(httpx.AsyncHTTPTransport(), self._secret_params)
        async with httpx.AsyncClient(transport=transport, timeout=self._timeout_s) as client:
            for attempt in range(1, self._max_attempts + 1):
                last = attempt == self._max_attempts
                try:
                    response = await client.post(self._url, params={"messageReplyOption": REPLY_OPTION}, json=body)
                except httpx.TransportError as error:
                    if last:
                        raise ChatPostError(
                            f"Google Chat unreachable after {attempt} attempts ({type(error).__name__})"
                        ) from None
                    delay = retry_delay(attempt, base_s=self._backoff_s)
                else:
                    if response.is_success:
                        return _message_name(response)
                    if response.status_code not in _RETRYABLE_STATUSES or last:
                        raise ChatPostError(self._describe(response, attempt))
                    delay = retry_delay(
                        attempt, base_s=self._backoff_s, retry_after=response.headers.get("Retry-After")
                    )
                logger.warning("google_chat_retry", space=self._space, attempt=attempt, delay_s=round(delay, 3))
                await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _describe(self, response: httpx.Response, attempt: int) -> str:
        try:
            error = response.json().get("error", {})
            detail = f"{error.get('status', '')}: {str(error.get('message', ''))[:200]}"
        except (ValueError, AttributeError):
            detail = response.text[:200]
        tries = f" after {attempt} attempts" if attempt > 1 else ""
        hint = _HINTS.get(response.status_code, "unexpected response")
        return (
            f"Google Chat webhook for space {self._space!r} refused the message{tries}: "
            f"HTTP {response.status_code} {detail} ({hint})"
        )


class _SecretQueryTransport(httpx.AsyncBaseTransport):
    """Adds the webhook's secret query parameters to each outgoing request, out of sight of logs and errors."""

    def __init__(self, inner: httpx.AsyncBaseTransport, params: httpx.QueryParams) -> None:
        self._inner = inner
        self._params = params

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send a copy of `request` whose URL carries the secret parameters."""
        secret_url = request.url.copy_merge_params(self._params)
        authorized = httpx.Request(
            request.method, secret_url, headers=request.headers, stream=request.stream, extensions=request.extensions
        )
        return await self._inner.handle_async_request(authorized)

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()


def _message_name(response: httpx.Response) -> str:
    try:
        return str(response.json()["name"])
    except (ValueError, KeyError, TypeError):
        raise ChatPostError(f"Google Chat answered HTTP {response.status_code} without a message name") from None
