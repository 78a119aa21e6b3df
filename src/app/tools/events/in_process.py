"""The embedded `EventBus`: bounded in-memory streams with in-process subscribers."""

from __future__ import annotations

import json
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]
"""An in-process listener: receives a copy of each new event envelope."""

DEFAULT_MAX_EVENTS = 10_000

logger = structlog.get_logger(__name__)


class InProcessEventBus:
    """`EventBus` for the embedded default: keeps the newest `max_events` envelopes per stream in memory.

    Idempotent by key per stream while the original event is still retained. An envelope is
    `{id, stream, published_at, idempotency_key, event}`.
    """

    def __init__(self, *, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        if max_events < 1:
            raise ValueError(f"max_events must be at least 1, got {max_events}")
        self._max_events = max_events
        self._streams: dict[str, deque[dict[str, Any]]] = {}
        self._ids_by_key: dict[str, dict[str, str]] = {}
        self._handlers: dict[str, list[EventHandler]] = {}

    async def publish(self, stream: str, event: Mapping[str, Any], *, idempotency_key: str) -> str:
        """Store `event` on `stream` and notify subscribers; the same key returns the first event's id."""
        existing = self._ids_by_key.get(stream, {}).get(idempotency_key)
        if existing is not None:
            return existing
        envelope = {
            "id": f"evt_{uuid.uuid4().hex[:16]}",
            "stream": stream,
            "published_at": datetime.now(UTC).isoformat(),
            "idempotency_key": idempotency_key,
            "event": _json_copy(stream, event),
        }
        self._append(stream, envelope)
        await self._notify(stream, envelope)
        return str(envelope["id"])

    def subscribe(self, stream: str, handler: EventHandler) -> None:
        """Call `handler` with every event published on `stream` from now on."""
        self._handlers.setdefault(stream, []).append(handler)

    def events(self, stream: str) -> list[dict[str, Any]]:
        """The retained envelopes of `stream`, oldest first (copies)."""
        return [json.loads(json.dumps(envelope)) for envelope in self._streams.get(stream, ())]

    def _append(self, stream: str, envelope: dict[str, Any]) -> None:
        retained = self._streams.setdefault(stream, deque(maxlen=self._max_events))
        ids_by_key = self._ids_by_key.setdefault(stream, {})
        if len(retained) == retained.maxlen:
            ids_by_key.pop(retained[0]["idempotency_key"], None)
        retained.append(envelope)
        ids_by_key[envelope["idempotency_key"]] = envelope["id"]

    async def _notify(self, stream: str, envelope: dict[str, Any]) -> None:
        for handler in list(self._handlers.get(stream, ())):
            try:
                await handler(json.loads(json.dumps(envelope)))
            except Exception:
                logger.exception("event_handler_failed", stream=stream, event_id=envelope["id"])


def _json_copy(stream: str, event: Mapping[str, Any]) -> dict[str, Any]:
    """A detached copy of `event`, refusing anything that would not survive a real event bus."""
    try:
        text = json.dumps(dict(event), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Event for stream {stream!r} is not JSON-safe: {exc}") from exc
    copy: dict[str, Any] = json.loads(text)
    return copy
