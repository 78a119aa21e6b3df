"""The `EventBus` capability: publish JSON events to named streams for downstream agents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class EventBus(Protocol):
    """Publishes JSON-safe events; idempotent by key."""

    async def publish(self, stream: str, event: Mapping[str, Any], *, idempotency_key: str) -> str:
        """Publish `event` on `stream` and return the event id."""
        ...
