"""Slack chat through slack_sdk: Web API `chat.postMessage` (threaded per account) or an incoming webhook.

Text is escaped for mrkdwn and posted with `parse=none`, `link_names=false` and no unfurling, so customer or
LLM text can neither mention (`<!channel>`, `@here`) nor link. Each channel gets ~`chat_messages_per_s`,
429s are retried after Retry-After, and a key already posted is never posted again (ledger in data_dir/chat).
"""

from __future__ import annotations

import logging
import uuid

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from src.app.config import CSMSettings
from src.app.schemas import ChatMessage
from src.app.tools.delivery import DELIVERED, THREAD, ChannelPacer, ChatPostError, DeliveryLedger, escape_chat_text
from src.app.tools.ratelimit import per_second_windows, shared_pacer

WEBHOOK_CHANNEL = "webhook"
"""Pacing/lock name for the one channel an incoming webhook posts to."""

_HINTS = {
    "channel_not_found": "no such channel, or the bot cannot see it; check the account's chat space "
    "or CSM_SLACK_DEFAULT_CHANNEL",
    "not_in_channel": "invite the bot to the channel",
    "is_archived": "the channel is archived",
    "channel_is_archived": "the channel is archived",
    "invalid_auth": "the token was rejected; check CSM_SLACK_BOT_TOKEN",
    "not_authed": "no token was sent; check CSM_SLACK_BOT_TOKEN",
    "token_revoked": "the token was revoked; check CSM_SLACK_BOT_TOKEN",
    "account_inactive": "the bot's workspace account is inactive; check CSM_SLACK_BOT_TOKEN",
    "missing_scope": "the bot token needs the chat:write scope",
    "ratelimited": "Slack kept rate-limiting after the retries",
    "msg_too_long": "the message is too long for Slack",
    "no_service": "the webhook was disabled or its URL is wrong; check CSM_SLACK_WEBHOOK_URL",
    "invalid_token": "the webhook URL's token is wrong; check CSM_SLACK_WEBHOOK_URL",
    "invalid_payload": "Slack could not parse the message",
}

_client_logger = logging.getLogger(f"{__name__}.client")
_client_logger.setLevel(logging.WARNING)  # slack_sdk logs the (secret) webhook URL at debug/info level


class SlackChat:
    """`ChatPoster` on Slack: the Web API when a bot token is given (threads per account), else a webhook."""

    def __init__(
        self,
        *,
        client: AsyncWebClient | AsyncWebhookClient,
        ledger: DeliveryLedger,
        pacer: ChannelPacer,
        default_channel: str | None = None,
    ) -> None:
        self._client = client
        self._ledger = ledger
        self._pacer = pacer
        self._default_channel = default_channel

    @classmethod
    def from_settings(cls, settings: CSMSettings) -> SlackChat:
        """Web API with `CSM_SLACK_BOT_TOKEN` (preferred: it can thread), else `CSM_SLACK_WEBHOOK_URL`."""
        client: AsyncWebClient | AsyncWebhookClient
        if settings.slack_bot_token is not None:
            client = AsyncWebClient(
                token=settings.slack_bot_token.get_secret_value(),
                base_url=settings.slack_api_base,
                logger=_client_logger,
                retry_handlers=_retry_handlers(),
            )
        elif settings.slack_webhook_url is not None:
            client = AsyncWebhookClient(
                url=settings.slack_webhook_url.get_secret_value(),
                logger=_client_logger,
                retry_handlers=_retry_handlers(),
            )
        else:
            raise ValueError("Slack needs CSM_SLACK_BOT_TOKEN (Web API, threads per account) or CSM_SLACK_WEBHOOK_URL")
        return cls(
            client=client,
            ledger=DeliveryLedger(settings.data_dir / "chat" / "slack.jsonl"),
            pacer=ChannelPacer(
                settings.chat_messages_per_s,
                shared=shared_pacer(settings, "chat", per_second_windows(settings.chat_messages_per_s)),
            ),
            default_channel=settings.slack_default_channel,
        )

    async def post(self, message: ChatMessage, *, idempotency_key: str) -> str:
        """Post `message` (escaped) unless this key was posted; returns `<channel id>/<ts>` (Web API)."""
        if not message.text.strip():
            raise ValueError(f"chat message for {message.space_name!r} has empty 'text'")
        channel = self._channel(message)
        text = escape_chat_text(message.text)

        async def post_once() -> str:
            async with self._pacer.turn(channel):
                if isinstance(self._client, AsyncWebClient):
                    return await _post_web(self._client, self._ledger, channel, text, message.thread_key)
                return await _post_webhook(self._client, text)

        message_id, _ = await self._ledger.once(DELIVERED, idempotency_key, post_once, lock=channel)
        return message_id

    def _channel(self, message: ChatMessage) -> str:
        if isinstance(self._client, AsyncWebhookClient):
            return WEBHOOK_CHANNEL
        channel = message.space_name.strip() or self._default_channel
        if not channel:
            raise ValueError("chat message has an empty 'space_name' and CSM_SLACK_DEFAULT_CHANNEL is not set")
        return channel


async def _post_web(
    client: AsyncWebClient, ledger: DeliveryLedger, channel: str, text: str, thread_key: str | None
) -> str:
    """One `chat.postMessage`; the first message of a thread key starts the thread later ones reply in."""
    thread_name = f"{channel} {thread_key}" if thread_key else None
    thread_ts = await ledger.get(THREAD, thread_name) if thread_name else None
    try:
        response = await client.chat_postMessage(
            channel=channel,
            text=text,
            thread_ts=thread_ts,
            parse="none",
            link_names=False,
            unfurl_links=False,
            unfurl_media=False,
        )
    except SlackApiError as error:
        code = str(error.response.get("error") or f"HTTP {error.response.status_code}")
        raise ChatPostError(f"Slack chat.postMessage to {channel!r} failed: {code} ({_hint(code)})") from error
    except (TimeoutError, aiohttp.ClientError) as error:
        raise ChatPostError(f"Slack API unreachable ({type(error).__name__})") from error
    ts = str(response["ts"])
    if thread_name and thread_ts is None:
        await ledger.put(THREAD, thread_name, ts)
    return f"{response.get('channel') or channel}/{ts}"


async def _post_webhook(webhook: AsyncWebhookClient, text: str) -> str:
    """One incoming-webhook post (no threads: a webhook never returns the message's ts)."""
    payload = {"text": text, "link_names": False, "unfurl_links": False, "unfurl_media": False}
    try:
        response = await webhook.send_dict(payload)
    except (TimeoutError, aiohttp.ClientError) as error:
        raise ChatPostError(f"Slack webhook unreachable ({type(error).__name__})") from None
    if response.status_code != 200:
        code = (response.body or "").strip()[:100]
        raise ChatPostError(f"Slack webhook refused the message: HTTP {response.status_code} {code} ({_hint(code)})")
    return f"{WEBHOOK_CHANNEL}/{uuid.uuid4().hex[:16]}"


def _retry_handlers() -> list[AsyncRetryHandler]:
    """Retry-After on 429 (twice), 5xx with backoff (twice), one reconnect."""
    return [
        AsyncRateLimitErrorRetryHandler(max_retry_count=2),
        AsyncServerErrorRetryHandler(max_retry_count=2),
        AsyncConnectionErrorRetryHandler(max_retry_count=1),
    ]


def _hint(code: str) -> str:
    return _HINTS.get(code, "see Slack's error reference")
