"""One delivery mechanism for remote writes (events, chat messages, mail drafts): the outbox pattern.

A remote write is first recorded as a pending outbox row in the store, then made; the row is marked done (and
the artifact audited) only after the write succeeded. A write that failed stays pending and is retried by the
next run (`deliver_pending`, called before a scan dispatches anything new), until it succeeds. Every sender is
idempotent by the row's key, so a run killed between the remote write and the settle delivers nothing twice.
On a store without an outbox the write is made directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from src.app.config import redact_secrets
from src.app.context import CSMContext
from src.app.nodes.delivery import audit
from src.app.schemas import ChatMessage, EmailMessage
from src.app.tools.store import OutboxEntry, outbox_of

log = structlog.get_logger(__name__)

Sender = Callable[[CSMContext, OutboxEntry], Awaitable[tuple[str, str | None]]]
"""Makes one remote write; returns the audit target and the delivered artifact's id."""


async def _send_event(ctx: CSMContext, entry: OutboxEntry) -> tuple[str, str | None]:
    stream = str(entry.payload["stream"])
    event_id = await ctx.events.publish(stream, entry.payload["event"], idempotency_key=entry.idempotency_key)
    return f"stream:{stream}", event_id


async def _send_chat(ctx: CSMContext, entry: OutboxEntry) -> tuple[str, str | None]:
    message = ChatMessage.model_validate(entry.payload["message"])
    message_id = await ctx.chat.post(message, idempotency_key=entry.idempotency_key)
    return f"chat:{message.space_name}", message_id


async def _send_mail(ctx: CSMContext, entry: OutboxEntry) -> tuple[str, str | None]:
    message = EmailMessage.model_validate(entry.payload["message"])
    draft = await ctx.mail.create_draft(
        message,
        idempotency_key=entry.idempotency_key,
        account_id=entry.account_id,
        kind=str(entry.payload.get("kind") or "email"),
    )
    return message.to, draft.draft_id


SENDERS: dict[str, Sender] = {"event": _send_event, "chat": _send_chat, "mail": _send_mail}


async def deliver(
    ctx: CSMContext,
    *,
    channel: str,
    key: str,
    artifact: str,
    payload: Mapping[str, Any],
    account_id: str | None,
    task_type: str,
) -> str | None:
    """Record the write as pending, make it, then mark it done and audit it; returns the artifact's id.

    A failure is raised after it was counted on the pending row, which the next run retries.
    """
    entry = OutboxEntry(
        idempotency_key=key,
        channel=channel,
        artifact=artifact,
        account_id=account_id,
        task_type=task_type,
        payload=dict(payload),
    )
    outbox = outbox_of(ctx.store)
    if outbox is None:
        return await _send_and_audit(ctx, entry)
    stored = await outbox.outbox_add(entry)
    if stored.status == "done":
        return stored.result
    return await _attempt(ctx, stored)


async def deliver_pending(ctx: CSMContext, *, limit: int = 500) -> dict[str, int]:
    """Retry every pending remote write once; returns how many were delivered and how many still failed."""
    outbox = outbox_of(ctx.store)
    counts = {"delivered": 0, "failed": 0}
    if outbox is None:
        return counts
    down: set[str] = set()
    for entry in await outbox.outbox_pending(limit=limit):
        if entry.channel in down:  # one failure per channel and pass: a server that is down is not waited on again
            counts["failed"] += 1
            continue
        try:
            await _attempt(ctx, entry)
        except Exception:  # noqa: BLE001 - counted on the row; the other channels are still tried
            counts["failed"] += 1
            down.add(entry.channel)
        else:
            counts["delivered"] += 1
    if counts["delivered"] or counts["failed"]:
        log.info("outbox_retried", **counts)
    return counts


async def _attempt(ctx: CSMContext, entry: OutboxEntry) -> str | None:
    outbox = outbox_of(ctx.store)
    assert outbox is not None  # only called for a store with an outbox
    try:
        target, artifact_id = await SENDERS[entry.channel](ctx, entry)
    except Exception as error:
        message = redact_secrets(f"{type(error).__name__}: {error}", ctx.settings)
        await outbox.outbox_settle(entry.idempotency_key, error=message)
        log.warning("outbox_delivery_failed", channel=entry.channel, key=entry.idempotency_key, error=message)
        raise
    # Audit first: a run killed between the two redoes the (idempotent) send and the audit is already there.
    await _audit(ctx, entry, target, artifact_id)
    await outbox.outbox_settle(entry.idempotency_key, result=artifact_id)
    return artifact_id


async def _send_and_audit(ctx: CSMContext, entry: OutboxEntry) -> str | None:
    target, artifact_id = await SENDERS[entry.channel](ctx, entry)
    await _audit(ctx, entry, target, artifact_id)
    return artifact_id


async def _audit(ctx: CSMContext, entry: OutboxEntry, target: str, artifact_id: str | None) -> None:
    await audit(
        ctx,
        artifact=entry.artifact,
        target=target,
        key=entry.idempotency_key,
        account_id=entry.account_id,
        task_type=entry.task_type or "",
        detail={"artifact_id": artifact_id},
    )
