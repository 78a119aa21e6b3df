"""The Redis Streams `EventBus`: JSON envelopes published with bounded XADD, read by consumer groups.

Each event becomes one stream entry whose fields are the envelope's attributes (strings) plus `payload`, the
event as JSON text. Publishing is idempotent by key through one Lua script that checks the key, appends the
entry and remembers the key (with a TTL) atomically. Two separate commands (`SET NX`, then `XADD`) would lose
the event for good if the connection dropped between them, because every retry would then find the key and
skip; with the script a retried publish (redis-py retries on connection errors) is always safe.

Downstream agents read with `RedisStreamConsumer`: a consumer group (`XGROUP CREATE ... MKSTREAM`),
`XREADGROUP` for new entries, `XACK` once handled, and `XAUTOCLAIM` to take over entries that another
consumer left pending for too long.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import structlog
from pydantic import BaseModel, Field, ValidationError
from pydantic_core import PydanticSerializationError, from_json, to_jsonable_python
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from src.app.config import CSMSettings

log = structlog.get_logger(__name__)

SOURCE = "csm-agent"
"""The `source` stamped on every envelope this agent publishes."""
DEFAULT_IDEMPOTENCY_TTL = timedelta(days=7)
IDEMPOTENCY_PREFIX = "csm:events:idempotency"

_PUBLISH_ONCE = """
local existing = redis.call('GET', KEYS[1])
if existing then
  return {0, existing}
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 4))
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[1])
return {1, ARGV[3]}
"""
"""KEYS: idempotency key, stream. ARGV: TTL seconds, max length, event id, then the entry's field/value pairs."""


class EventBusError(RuntimeError):
    """Redis could not be reached or refused a command (the message never contains the URL's password)."""


class EventEnvelope(BaseModel):
    """What a downstream agent receives: who published what, when, for which tenant, and the JSON payload."""

    event_id: str
    tenant_id: str
    source: str
    correlation_id: str = Field(description="The publisher's idempotency key: the same for every retry of an event.")
    type: str = Field(description="The event's `type` or `alert_type` field, else the stream name.")
    time: datetime
    stream: str
    payload: dict[str, Any]

    def to_fields(self) -> dict[str, str]:
        """The stream entry's fields: the attributes as text, the payload as JSON text."""
        fields: dict[str, str] = self.model_dump(mode="json", exclude={"payload"})
        return {**fields, "payload": json.dumps(self.payload, allow_nan=False)}

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> EventEnvelope:
        """Rebuild an envelope from a stream entry's fields (ValueError when they are not one)."""
        if "payload" not in fields:
            raise ValueError("the stream entry has no 'payload' field")
        return cls.model_validate({**fields, "payload": from_json(fields["payload"])})


class ReceivedEvent(BaseModel):
    """One entry read through a consumer group: its stream entry id (to acknowledge) and its envelope."""

    message_id: str
    envelope: EventEnvelope


class RedisEventBus:
    """`EventBus` on Redis Streams, idempotent by key per stream for `idempotency_ttl` (default 7 days).

    Args:
        client: A `redis.asyncio.Redis` client created with `decode_responses=True` (see `redis_client`).
        tenant_id: Stamped on every envelope and part of the idempotency keys.
        maxlen: Approximate bound of every stream (`XADD MAXLEN ~`): Redis trims whole internal nodes, so a
            stream may briefly hold up to one node (100 entries by default) more.
        idempotency_ttl: How long a key is remembered.
        location: Where the client points, for error messages (never with a password).
    """

    def __init__(
        self,
        client: Redis,
        *,
        tenant_id: str,
        maxlen: int,
        idempotency_ttl: timedelta = DEFAULT_IDEMPOTENCY_TTL,
        location: str = "redis",
    ) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, got {maxlen}")
        if idempotency_ttl < timedelta(seconds=1):
            raise ValueError(f"idempotency_ttl must be at least one second, got {idempotency_ttl}")
        self._client = client
        self._tenant_id = tenant_id
        self._maxlen = maxlen
        self._ttl_s = int(idempotency_ttl.total_seconds())
        self._location = location
        self._publish_once = client.register_script(_PUBLISH_ONCE)

    @classmethod
    def from_settings(cls, settings: CSMSettings) -> RedisEventBus:
        """A bus on `settings.redis_url` for `settings.tenant_id`; no connection is made before the first command."""
        if settings.redis_url is None:
            raise ValueError("CSM_REDIS_URL is not set; the Redis event bus needs it")
        url = settings.redis_url.get_secret_value()
        return cls(
            redis_client(url),
            tenant_id=settings.tenant_id,
            maxlen=settings.events_stream_maxlen,
            location=safe_url(url),
        )

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._client.aclose()

    async def publish(self, stream: str, event: Mapping[str, Any], *, idempotency_key: str) -> str:
        """Append `event` to `stream` in an envelope and return its event id (the first one's, for a known key)."""
        envelope = EventEnvelope(
            event_id=f"evt_{uuid.uuid4().hex}",
            tenant_id=self._tenant_id,
            source=SOURCE,
            correlation_id=idempotency_key,
            type=str(event.get("type") or event.get("alert_type") or stream),
            time=datetime.now(UTC),
            stream=stream,
            payload=json_safe(stream, event),
        )
        pairs = [text for field_and_value in envelope.to_fields().items() for text in field_and_value]
        key = f"{IDEMPOTENCY_PREFIX}:{self._tenant_id}:{stream}:{idempotency_key}"
        args: list[str | int] = [self._ttl_s, self._maxlen, envelope.event_id, *pairs]
        created, event_id = await call_redis(self._publish_once(keys=[key, stream], args=args), self._location)
        log.debug("event_published", stream=stream, event_id=event_id, duplicate=not created)
        return str(event_id)

    def consumer(self, stream: str, group: str, consumer: str, *, start_id: str = "$") -> RedisStreamConsumer:
        """A consumer-group reader of `stream`; a new group starts at `start_id` ("$": new entries, "0": all kept)."""
        return RedisStreamConsumer(self._client, stream, group, consumer, start_id=start_id, location=self._location)


class RedisStreamConsumer:
    """Reads one stream as `consumer` of consumer group `group`; entries stay pending until acknowledged."""

    def __init__(
        self, client: Redis, stream: str, group: str, consumer: str, *, start_id: str = "$", location: str = "redis"
    ) -> None:
        self._client = client
        self.stream, self.group, self.consumer = stream, group, consumer
        self._start_id = start_id
        self._location = location
        self._group_ready = False

    async def ensure_group(self) -> None:
        """Create the consumer group (and the stream) unless it exists."""
        if self._group_ready:
            return
        command = self._client.xgroup_create(self.stream, self.group, id=self._start_id, mkstream=True)
        try:
            await call_redis(command, self._location)
        except EventBusError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self._group_ready = True

    async def read(self, count: int = 10, block_ms: int | None = None) -> list[ReceivedEvent]:
        """Up to `count` entries never delivered to this group; waits up to `block_ms` when there are none."""
        await self.ensure_group()
        command = self._client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms)
        replies = await call_redis(command, self._location)
        return await self._parse([entry for _, entries in replies or [] for entry in entries])

    async def ack(self, *message_ids: str) -> int:
        """Acknowledge handled entries; returns how many of them were pending."""
        if not message_ids:
            return 0
        return int(await call_redis(self._client.xack(self.stream, self.group, *message_ids), self._location))

    async def claim_stale(self, min_idle_ms: int, count: int = 10) -> list[ReceivedEvent]:
        """Take over up to `count` entries left pending longer than `min_idle_ms` (their reader likely died)."""
        await self.ensure_group()
        command = self._client.xautoclaim(self.stream, self.group, self.consumer, min_idle_ms, "0-0", count=count)
        _, entries, *_ = await call_redis(command, self._location)
        return await self._parse(entries)

    async def listen(self, *, count: int = 10, block_ms: int = 5_000) -> AsyncIterator[ReceivedEvent]:
        """Yield entries as they arrive, forever; acknowledge each with `ack` once handled."""
        while True:
            for event in await self.read(count=count, block_ms=block_ms):
                yield event

    async def _parse(self, entries: Sequence[tuple[str, Mapping[str, str] | None]]) -> list[ReceivedEvent]:
        """The entries' envelopes; an entry that is not an envelope is logged and acknowledged, never redelivered."""
        events, malformed = [], []
        for message_id, fields in entries:
            try:
                events.append(ReceivedEvent(message_id=message_id, envelope=EventEnvelope.from_fields(fields or {})))
            except (ValidationError, ValueError) as error:
                log.warning("event_malformed", stream=self.stream, message_id=message_id, error=str(error)[:300])
                malformed.append(message_id)
        await self.ack(*malformed)
        return events


def redis_client(url: str) -> Redis:
    """A `redis.asyncio` client for `url` that decodes replies as text and gives up within seconds when unreachable."""
    retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=2)
    return Redis.from_url(url, decode_responses=True, socket_connect_timeout=3, retry=retry)


def safe_url(url: str) -> str:
    """Where `url` points, for messages and logs: scheme, user, host, port and path; never a password or query."""
    parts = urlsplit(url)
    user = f"{parts.username or ''}{':***' if parts.password else ''}@" if parts.username or parts.password else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{user}{parts.hostname or ''}{port}{parts.path}"


async def call_redis(command: Awaitable[Any], location: str) -> Any:
    """Await one Redis command, turning client errors into an `EventBusError` that names `location`."""
    try:
        return await command
    except (RedisConnectionError, RedisTimeoutError, OSError) as error:
        raise EventBusError(f"Redis at {location} is unreachable: {error}") from error
    except RedisError as error:
        raise EventBusError(f"Redis at {location} refused the command: {error}") from error


def json_safe(stream: str, event: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON copy of `event`: datetimes become ISO-8601 text and Decimals exact strings.

    NaN, infinities and objects with no JSON form are refused with a TypeError naming the stream.
    """
    try:
        text = json.dumps(to_jsonable_python(dict(event)), allow_nan=False)
    except (PydanticSerializationError, ValueError) as error:
        raise TypeError(f"Event for stream {stream!r} is not JSON-safe: {error}") from error
    payload: dict[str, Any] = json.loads(text)
    return payload
