"""The Redis Streams event bus on the machine's real Redis: envelopes, idempotency, trimming, consumer groups."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from structlog.testing import capture_logs

from src.app.config import CSMSettings
from src.app.context import CSMContext
from src.app.graph.customer_success import build_customer_success_graph
from src.app.nodes.alerts import ALERT_TYPE, CHURN_STREAM
from src.app.tools.events.redis_streams import IDEMPOTENCY_PREFIX, EventBusError, RedisEventBus, redis_client
from tests.support.fakes import AT_RISK, HEALTHY, make_account
from tests.support.servers import REDIS_URL, require_redis


class Namespace:
    """Unique stream names and a unique tenant for one test, and the cleanup of everything they created."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.tenant = f"test-{uuid.uuid4().hex[:10]}"
        self.streams: list[str] = []

    def stream(self, name: str = "events") -> str:
        stream = f"csm-test:{self.tenant}:{name}"
        self.streams.append(stream)
        return stream

    def bus(self, *, maxlen: int = 1_000, ttl: timedelta = timedelta(days=7)) -> RedisEventBus:
        return RedisEventBus(self.client, tenant_id=self.tenant, maxlen=maxlen, idempotency_ttl=ttl)

    async def cleanup(self) -> None:
        keys = [key async for key in self.client.scan_iter(match=f"{IDEMPOTENCY_PREFIX}:{self.tenant}:*")]
        if self.streams or keys:
            await self.client.delete(*self.streams, *keys)


@pytest.fixture
async def ns() -> AsyncIterator[Namespace]:
    require_redis()
    client = redis_client(REDIS_URL)
    namespace = Namespace(client)
    yield namespace
    await namespace.cleanup()
    await client.aclose()


async def test_published_events_are_read_by_a_group_and_acknowledged(ns: Namespace) -> None:
    bus, stream = ns.bus(), ns.stream()
    reader = bus.consumer(stream, "downstream", "worker-1")
    await reader.ensure_group()
    ids = [await bus.publish(stream, {"n": n}, idempotency_key=f"k{n}") for n in range(3)]

    received = await reader.read(count=10)

    assert [event.envelope.event_id for event in received] == ids
    assert [event.envelope.payload for event in received] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert (await ns.client.xpending(stream, "downstream"))["pending"] == 3
    assert await reader.ack(*(event.message_id for event in received)) == 3
    assert (await ns.client.xpending(stream, "downstream"))["pending"] == 0
    assert await reader.read(count=10) == []


async def test_envelope_carries_tenant_source_correlation_type_and_time(ns: Namespace) -> None:
    bus, stream = ns.bus(), ns.stream()
    before = datetime.now(UTC)
    event_id = await bus.publish(stream, {"alert_type": "csm_churn_alert", "account_id": "a1"}, idempotency_key="k1")

    [(_, fields)] = await ns.client.xrange(stream)
    [received] = await bus.consumer(stream, "g", "c", start_id="0").read()

    envelope = received.envelope
    assert envelope.event_id == event_id and event_id.startswith("evt_")
    assert (envelope.tenant_id, envelope.source, envelope.correlation_id) == (ns.tenant, "csm-agent", "k1")
    assert (envelope.type, envelope.stream) == ("csm_churn_alert", stream)
    assert before <= envelope.time <= datetime.now(UTC)
    assert envelope.payload == {"alert_type": "csm_churn_alert", "account_id": "a1"}
    assert set(fields) == {"event_id", "tenant_id", "source", "correlation_id", "type", "time", "stream", "payload"}
    assert fields["payload"] == '{"alert_type": "csm_churn_alert", "account_id": "a1"}'


async def test_event_type_falls_back_to_type_field_then_stream_name(ns: Namespace) -> None:
    bus, stream = ns.bus(), ns.stream()
    await bus.publish(stream, {"type": "renewal_due"}, idempotency_key="k1")
    await bus.publish(stream, {"account_id": "a1"}, idempotency_key="k2")

    received = await bus.consumer(stream, "g", "c", start_id="0").read()

    assert [event.envelope.type for event in received] == ["renewal_due", stream]


async def test_datetimes_dates_and_decimals_become_json_text(ns: Namespace) -> None:
    bus, stream = ns.bus(), ns.stream()
    event = {
        "computed_at": datetime(2026, 1, 5, 9, 30, tzinfo=UTC),
        "renews_on": date(2026, 3, 31),
        "arr": Decimal("12000.10"),
        "tags": ("a", "b"),
    }
    await bus.publish(stream, event, idempotency_key="k1")

    [received] = await bus.consumer(stream, "g", "c", start_id="0").read()

    assert received.envelope.payload == {
        "computed_at": "2026-01-05T09:30:00Z",
        "renews_on": "2026-03-31",
        "arr": "12000.10",
        "tags": ["a", "b"],
    }


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), object()], ids=["nan", "inf", "object"])
async def test_values_without_a_json_form_are_refused_and_nothing_is_published(ns: Namespace, bad: object) -> None:
    bus, stream = ns.bus(), ns.stream()
    with pytest.raises(TypeError, match=f"stream '{stream}' is not JSON-safe"):
        await bus.publish(stream, {"score": bad}, idempotency_key="k1")
    assert await ns.client.exists(stream) == 0
    assert await bus.publish(stream, {"score": 1}, idempotency_key="k1")


async def test_a_key_is_published_once_per_stream_even_when_racing(ns: Namespace) -> None:
    bus, stream, other = ns.bus(), ns.stream(), ns.stream("other")

    ids = await asyncio.gather(*(bus.publish(stream, {"n": n}, idempotency_key="same") for n in range(20)))
    elsewhere = await bus.publish(other, {"n": 0}, idempotency_key="same")

    assert len(set(ids)) == 1 and elsewhere != ids[0]
    assert await ns.client.xlen(stream) == 1 and await ns.client.xlen(other) == 1
    ttl = await ns.client.ttl(f"{IDEMPOTENCY_PREFIX}:{ns.tenant}:{stream}:same")
    assert timedelta(days=7) - timedelta(minutes=1) < timedelta(seconds=ttl) <= timedelta(days=7)


async def test_a_key_can_be_published_again_once_its_ttl_expired(ns: Namespace) -> None:
    bus, stream = ns.bus(ttl=timedelta(seconds=1)), ns.stream()
    first = await bus.publish(stream, {"n": 1}, idempotency_key="k")
    key = f"{IDEMPOTENCY_PREFIX}:{ns.tenant}:{stream}:k"
    assert 0 < await ns.client.pttl(key) <= 1000
    await ns.client.delete(key)  # what Redis does when the TTL runs out, without waiting for it

    again = await bus.publish(stream, {"n": 2}, idempotency_key="k")

    assert again != first and await ns.client.xlen(stream) == 2


async def test_streams_are_trimmed_near_maxlen_keeping_the_newest(ns: Namespace) -> None:
    bus, stream = ns.bus(maxlen=10), ns.stream()
    node_size = int((await ns.client.config_get("stream-node-max-entries"))["stream-node-max-entries"])
    published = [await bus.publish(stream, {"n": n}, idempotency_key=f"k{n}") for n in range(3 * node_size)]

    length = await ns.client.xlen(stream)
    [(_, newest)] = await ns.client.xrevrange(stream, count=1)

    assert 10 <= length <= 10 + node_size < len(published)
    assert newest["event_id"] == published[-1]


async def test_two_consumers_of_one_group_share_the_work(ns: Namespace) -> None:
    bus, stream = ns.bus(), ns.stream()
    first = bus.consumer(stream, "workers", "w1")
    second = bus.consumer(stream, "workers", "w2")
    await first.ensure_group()
    published = {await bus.publish(stream, {"n": n}, idempotency_key=f"k{n}") for n in range(6)}

    got_first = {event.envelope.event_id for event in await first.read(count=2)}
    got_second = {event.envelope.event_id for event in await second.read(count=10)}

    assert len(got_first) == 2 and len(got_second) == 4
    assert got_first.isdisjoint(got_second) and got_first | got_second == published


async def test_a_separate_group_gets_every_event_again(ns: Namespace) -> None:
    bus, stream = ns.bus(), ns.stream()
    await bus.publish(stream, {"n": 1}, idempotency_key="k1")

    audit = await bus.consumer(stream, "audit", "a1", start_id="0").read()
    billing = await bus.consumer(stream, "billing", "b1", start_id="0").read()
    late = await bus.consumer(stream, "late", "l1").read()

    assert [e.envelope.payload for e in audit] == [e.envelope.payload for e in billing] == [{"n": 1}]
    assert late == []


async def test_entries_left_pending_by_a_dead_consumer_are_claimed_by_another(ns: Namespace) -> None:
    bus, stream = ns.bus(), ns.stream()
    dead, alive = bus.consumer(stream, "workers", "dead"), bus.consumer(stream, "workers", "alive")
    await dead.ensure_group()
    await bus.publish(stream, {"n": 1}, idempotency_key="k1")
    [lost] = await dead.read()

    assert await alive.claim_stale(min_idle_ms=60_000) == []
    [claimed] = await alive.claim_stale(min_idle_ms=0)

    assert claimed.message_id == lost.message_id and claimed.envelope == lost.envelope
    [row] = await ns.client.xpending_range(stream, "workers", min="-", max="+", count=10)
    assert (row["consumer"], row["times_delivered"]) == ("alive", 2)
    await alive.ack(claimed.message_id)
    assert (await ns.client.xpending(stream, "workers"))["pending"] == 0


async def test_listen_yields_events_as_they_are_published(ns: Namespace) -> None:
    bus, stream = ns.bus(), ns.stream()
    reader = bus.consumer(stream, "g", "c")
    await reader.ensure_group()

    async def first_two() -> list[int]:
        seen = []
        async for event in reader.listen(block_ms=50):
            seen.append(event.envelope.payload["n"])
            await reader.ack(event.message_id)
            if len(seen) == 2:
                return seen
        return seen

    listening = asyncio.create_task(first_two())
    await bus.publish(stream, {"n": 1}, idempotency_key="k1")
    await bus.publish(stream, {"n": 2}, idempotency_key="k2")

    assert await asyncio.wait_for(listening, timeout=5) == [1, 2]


async def test_an_entry_that_is_not_an_envelope_is_skipped_logged_and_acknowledged(ns: Namespace) -> None:
    bus, stream = ns.bus(), ns.stream()
    reader = bus.consumer(stream, "g", "c")
    await reader.ensure_group()
    await ns.client.xadd(stream, {"hello": "world"})
    await bus.publish(stream, {"n": 1}, idempotency_key="k1")

    with capture_logs() as logs:
        received = await reader.read()

    assert [event.envelope.payload for event in received] == [{"n": 1}]
    assert [log["event"] for log in logs] == ["event_malformed"]
    assert (await ns.client.xpending(stream, "g"))["pending"] == 1


async def test_unreachable_redis_fails_fast_with_a_clear_error_and_no_password() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = CSMSettings(redis_url=SecretStr(f"redis://csm:s3cret-pw@127.0.0.1:{port}/0"), _env_file=None)  # type: ignore[call-arg]
    bus = RedisEventBus.from_settings(settings)
    started = time.perf_counter()

    with pytest.raises(EventBusError) as raised:
        await bus.publish("churn_alerts", {"n": 1}, idempotency_key="k1")

    assert time.perf_counter() - started < 5
    assert f"Redis at redis://csm:***@127.0.0.1:{port}/0 is unreachable" in str(raised.value)
    assert "s3cret-pw" not in str(raised.value) and "s3cret-pw" not in repr(raised.value.__cause__)
    await bus.aclose()


def test_from_settings_needs_a_redis_url() -> None:
    with pytest.raises(ValueError, match="CSM_REDIS_URL is not set"):
        RedisEventBus.from_settings(CSMSettings(_env_file=None))  # type: ignore[call-arg]


async def test_a_health_scan_publishes_churn_alerts_on_redis(ns: Namespace, ctx: CSMContext) -> None:
    bus = RedisEventBus(ns.client, tenant_id=ns.tenant, maxlen=10_000)
    reader = bus.consumer(CHURN_STREAM, f"test-{ns.tenant}", "c1")
    await reader.ensure_group()
    await ctx.store.upsert_accounts([make_account("a-ok", HEALTHY), make_account("a-risk", AT_RISK)])
    graph = build_customer_success_graph()

    result = (await graph.ainvoke({"task": {"type": "health_scan"}}, context=replace(ctx, events=bus)))["result"]

    ours = [event for event in await reader.read(count=1000) if event.envelope.tenant_id == ns.tenant]
    await ns.client.xdel(CHURN_STREAM, *(event.message_id for event in ours))
    await ns.client.xgroup_destroy(CHURN_STREAM, f"test-{ns.tenant}")
    if await ns.client.xlen(CHURN_STREAM) == 0:
        await ns.client.delete(CHURN_STREAM)
    [event] = ours
    assert result["alerts"][0]["channels"]["event_bus"] is True
    assert (event.envelope.type, event.envelope.payload["account_id"]) == (ALERT_TYPE, "a-risk")
    assert event.envelope.correlation_id.startswith("churn:a-risk:")
