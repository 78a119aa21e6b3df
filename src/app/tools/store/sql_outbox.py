"""The SQL store's outbox of pending remote writes (mixed into `SQLStore`; see `nodes/outbox.py`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Executable

from src.app.tools.store import OutboxEntry, SavedArtifact
from src.app.tools.store.sql_tables import OUTBOX, utc_now


class OutboxRows:
    """The `Outbox` capability of the SQL store: one `outbox` row per remote write, pending until settled."""

    _transaction: Callable[..., AbstractContextManager[Connection]]
    _fetch_mappings: Callable[[Any], list[dict[str, Any]]]
    _insert_once: Callable[[Table, Mapping[str, Any]], SavedArtifact]

    async def outbox_add(self, entry: OutboxEntry) -> OutboxEntry:
        """Record a pending remote write once per key; returns the stored entry (maybe delivered already)."""
        row = {**entry.model_dump(), "status": "pending", "attempts": 0, "created_at": utc_now()}
        await asyncio.to_thread(self._insert_once, OUTBOX, row)
        rows = await asyncio.to_thread(
            self._fetch_mappings, select(OUTBOX).where(OUTBOX.c.idempotency_key == entry.idempotency_key)
        )
        return OutboxEntry.model_validate(rows[0])

    async def outbox_pending(self, *, limit: int = 100) -> list[OutboxEntry]:
        """Remote writes not delivered yet, oldest first."""
        query = select(OUTBOX).where(OUTBOX.c.status == "pending").order_by(OUTBOX.c.id).limit(limit)
        return [OutboxEntry.model_validate(row) for row in await asyncio.to_thread(self._fetch_mappings, query)]

    async def outbox_settle(self, idempotency_key: str, *, result: str | None = None, error: str | None = None) -> None:
        """Mark a write delivered (`error` None, with its `result`) or count a failed attempt (`error`)."""
        where = OUTBOX.c.idempotency_key == idempotency_key
        if error is None:
            values: dict[str, Any] = {"status": "done", "result": result, "delivered_at": utc_now(), "last_error": None}
        else:
            values = {"last_error": error[:2000]}
        statement = update(OUTBOX).where(where).values(**values, attempts=OUTBOX.c.attempts + 1)
        await asyncio.to_thread(self._execute, statement)

    def _execute(self, statement: Executable) -> None:
        with self._transaction(write=True) as connection:
            connection.execute(statement)
