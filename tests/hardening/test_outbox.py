"""Nothing lost: a remote write that failed stays pending in the outbox and the next run delivers it, once."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from src.app.analysis.health import CSMHealthScorer
from src.app.context import CSMContext
from src.app.graph.customer_success import build_customer_success_graph
from src.app.nodes.alerts import CHURN_STREAM
from src.app.tools.events.redis_streams import IDEMPOTENCY_PREFIX, RedisEventBus, redis_client
from src.app.tools.store.sql import SQLStore
from tests.conftest import NOW
from tests.hardening.conftest import fresh_store, offline_settings
from tests.support.fakes import (
    AT_RISK,
    HEALTHY,
    RecordingChat,
    RecordingEvents,
    RecordingMail,
    ScriptedLLM,
    make_account,
)
from tests.support.servers import REDIS_URL, require_redis

graph = build_customer_success_graph()
BOOK = [make_account(f"risk-{i}", AT_RISK) for i in range(3)] + [make_account("fine", HEALTHY)]


class SwitchableEvents(RecordingEvents):
    """The recording bus, refusing every publish while `down`."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.calls = 0

    async def publish(self, stream: str, event: Mapping[str, Any], *, idempotency_key: str) -> str:
        self.calls += 1
        if self.down:
            raise ConnectionError("Redis at redis://127.0.0.1:1 is unreachable")
        return await super().publish(stream, event, idempotency_key=idempotency_key)


def context(store: SQLStore, folder: Any, **clients: Any) -> CSMContext:
    defaults: dict[str, Any] = {"mail": RecordingMail(), "chat": RecordingChat(), "events": RecordingEvents()}
    return CSMContext(
        settings=offline_settings(folder / "data"),
        store=store,
        llm=ScriptedLLM(),
        scorer=CSMHealthScorer(),
        clock=lambda: NOW,
        **(defaults | clients),
    )


async def scan(ctx: CSMContext) -> dict[str, Any]:
    result: dict[str, Any] = (await graph.ainvoke({"task": {"type": "health_scan"}}, context=ctx))["result"]
    return result


async def test_events_missed_while_the_bus_was_down_are_published_once_by_the_next_run() -> None:
    async with fresh_store() as (store, folder):
        events = SwitchableEvents()
        ctx = context(store, folder, events=events)
        await store.upsert_accounts(BOOK)

        first = await scan(ctx)
        alerted = {alert["account_id"] for alert in first["alerts"]}
        assert alerted == {"risk-0", "risk-1", "risk-2"}
        assert all("event_bus" in alert["errors"] for alert in first["alerts"])
        assert events.events == {}
        assert not [e for e in await store.list_audit() if e.artifact == "event:churn_alert"]

        events.down = False
        second = await scan(ctx)  # same day: the alerts are done (cooldown), only the pending events go out
        assert second["alerts"] == []
        assert second["redelivered"] == {"delivered": 3, "failed": 0}
        assert {event["account_id"] for _, event in events.events.values()} == alerted
        assert len(events.events) == 3
        audited = [e for e in await store.list_audit() if e.artifact == "event:churn_alert"]
        assert sorted(e.account_id or "" for e in audited) == sorted(alerted)

        calls = events.calls
        third = await scan(ctx)
        assert third["redelivered"] == {"delivered": 0, "failed": 0}
        assert events.calls == calls  # nothing pending, nothing republished


async def test_chat_messages_missed_while_chat_was_down_are_posted_by_the_next_run() -> None:
    async with fresh_store() as (store, folder):
        chat = RecordingChat(fail_with=ConnectionError("chat is down"))
        ctx = context(store, folder, chat=chat)
        await store.upsert_accounts(BOOK)
        await scan(ctx)
        assert chat.messages == {}
        chat.fail_with = None
        second = await scan(ctx)
        assert second["redelivered"]["delivered"] == 3
        audited = [e for e in await store.list_audit() if e.artifact == "chat:churn_alert"]
        assert len(audited) == 3 and len(chat.messages) == 3


async def test_a_second_failure_keeps_the_event_pending_and_counts_the_attempt() -> None:
    async with fresh_store() as (store, folder):
        events = SwitchableEvents()
        ctx = context(store, folder, events=events)
        await store.upsert_accounts(BOOK[:1])
        await scan(ctx)
        again = await scan(ctx)
        assert again["redelivered"] == {"delivered": 0, "failed": 1}
        (pending,) = await store.outbox_pending()
        assert pending.channel == "event" and pending.attempts == 2 and "unreachable" in (pending.last_error or "")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_with_real_redis_down_then_up_every_pending_event_is_published_once() -> None:
    require_redis()
    tenant = f"test-{uuid.uuid4().hex[:10]}"
    client = redis_client(REDIS_URL)
    down = RedisEventBus(redis_client(f"redis://127.0.0.1:{closed_port()}/0"), tenant_id=tenant, maxlen=10_000)
    up = RedisEventBus(client, tenant_id=tenant, maxlen=10_000)
    try:
        async with fresh_store() as (store, folder):
            ctx = context(store, folder, events=down)
            await store.upsert_accounts(BOOK)
            first = await scan(ctx)
            assert all("event_bus" in alert["errors"] for alert in first["alerts"])

            ctx = replace(ctx, events=up)
            await scan(ctx)
            await scan(ctx)
            entries = await client.xrange(CHURN_STREAM, min="-", max="+")
            ours = [fields for _, fields in entries if fields.get("tenant_id") == tenant]
            keys = sorted(fields["correlation_id"] for fields in ours)
            assert len(keys) == 3 and len(set(keys)) == 3
            assert await store.outbox_pending() == []
    finally:
        ids = [entry_id for entry_id, fields in await client.xrange(CHURN_STREAM) if fields.get("tenant_id") == tenant]
        if ids:
            await client.xdel(CHURN_STREAM, *ids)
        keys = [key async for key in client.scan_iter(match=f"{IDEMPOTENCY_PREFIX}:{tenant}:*")]
        if keys:
            await client.delete(*keys)
        await down.aclose()
        await client.aclose()


@pytest.mark.parametrize("channel", ["event", "chat", "mail"])
def test_every_remote_channel_has_a_sender(channel: str) -> None:
    from src.app.nodes.outbox import SENDERS

    assert channel in SENDERS
