"""The book as the desk shows it, from small indexed tables: each account's newest score and daily RAG counts.

`account_health` (one small row per account: newest score, change, costliest signals, and a copy of the account's
name, status, owner, ARR, segment and renewal) and `book_days` (RAG counts per day) are kept by the store's own
score writes (`sql_book_rows.keep_book`, in the scan's write transaction), so the first view after a scan reads
nothing back. `BookStore.refresh()` copies the listing fields of accounts updated since its last run (by the
`updated_at` index) and catches up score rows the book does not hold yet, a day at a time: those an older
version wrote, or a write of several days at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from pydantic_core import from_json
from sqlalchemy import Select, Table, and_, func, or_, select
from sqlalchemy.engine import Connection

from src.app.tools.store.sql import SQLStore
from src.app.tools.store.sql_book_rows import (
    ACCOUNTS_MARK,
    apply_day,
    book_mark,
    copy_account_fields,
    health_rows,
    lock_book,
    upsert,
)
from src.app.tools.store.sql_tables import ACCOUNT_HEALTH, ACCOUNTS, BOOK_DAYS, DESK_MARKS, HEALTH_SCORES

RAGS = ("RED", "AMBER", "GREEN")
REFRESH_BATCH = 50_000
"""Score rows read per step of a refresh."""
_REFRESH_LOCK = threading.Lock()


@dataclass(frozen=True)
class BookFilter:
    """What part of the book to show: an owner's accounts, a RAG, a segment, renewals within N days, a search."""

    owner: str | None = None
    rag: str | None = None
    segment: str | None = None
    renewal_within_days: int | None = None
    search: str | None = None


@dataclass(frozen=True)
class BookRow:
    """One account on the book page."""

    account_id: str
    name: str | None
    rep_email: str | None
    arr: float | None
    segment: str | None
    renewal_date: str | None
    score: float
    rag: str
    delta: float | None
    churn_risk_level: str
    top_signals: list[list[Any]]


class BookStore:
    """Book queries on an `SQLStore`'s database."""

    def __init__(self, store: SQLStore, *, max_points: dict[str, float]) -> None:
        self._store = store
        self._max_points = max_points

    async def refresh(self) -> int:
        """Bring `account_health` and `book_days` up to date with the scores and accounts; returns score rows read."""
        return await asyncio.to_thread(self._refresh)

    async def counts(self, where: BookFilter, *, today: date) -> dict[str, dict[str, float]]:
        """Accounts and ARR per RAG in the filtered book."""
        h = ACCOUNT_HEALTH.c
        query = select(h.rag, func.count().label("n"), func.coalesce(func.sum(h.arr), 0).label("arr"))
        rows = await asyncio.to_thread(self._fetch, _filtered(query, where, today).group_by(h.rag))
        found = {row["rag"]: {"accounts": int(row["n"]), "arr": float(row["arr"])} for row in rows}
        return {rag: found.get(rag, {"accounts": 0, "arr": 0.0}) for rag in RAGS}

    async def rows(self, where: BookFilter, *, today: date, order: str = "risk", limit: int = 25) -> list[BookRow]:
        """Accounts of the filtered book: riskiest first (`risk`), biggest fall (`down`) or rise (`up`)."""
        h = ACCOUNT_HEALTH.c
        orders = {
            "risk": (h.score.asc(), h.account_id),
            "down": (h.delta.asc(), h.account_id),
            "up": (h.delta.desc(), h.account_id),
        }
        query = _filtered(select(*(h[name] for name in BookRow.__dataclass_fields__)), where, today)
        if order != "risk":
            query = query.where(h.delta < 0 if order == "down" else h.delta > 0)
        rows = await asyncio.to_thread(self._fetch, query.order_by(*orders[order]).limit(limit))
        return [BookRow(**row) for row in rows]

    async def movement(
        self, *, today: date, windows: tuple[int, ...] = (7, 30, 90)
    ) -> dict[int, dict[str, int] | None]:
        """The whole book's RAG counts now minus those at the end of the day N days ago (None: no such day)."""
        query = select(BOOK_DAYS.c.day, BOOK_DAYS.c.counts).order_by(BOOK_DAYS.c.day)
        days = [(row["day"], row["counts"]) for row in await asyncio.to_thread(self._fetch, query)]
        if not days:
            return dict.fromkeys(windows)
        now = days[-1][1]
        moved: dict[int, dict[str, int] | None] = {}
        for window in windows:
            cutoff = (today - timedelta(days=window)).isoformat()
            earlier = [counts for day, counts in days if day <= cutoff]
            moved[window] = None if not earlier else {rag: now.get(rag, 0) - earlier[-1].get(rag, 0) for rag in RAGS}
        return moved

    async def owners(self) -> list[str]:
        """Every rep who owns a scored account (by the `rep_email` index)."""
        column = ACCOUNT_HEALTH.c.rep_email
        query = select(column).where(column.is_not(None)).distinct().order_by(column)
        return [str(row["rep_email"]) for row in await asyncio.to_thread(self._fetch, query)]

    async def segments(self) -> list[str]:
        """Every segment a scored account is in."""
        column = ACCOUNT_HEALTH.c.segment
        query = select(column).where(column.is_not(None)).distinct().order_by(column)
        return [str(row["segment"]) for row in await asyncio.to_thread(self._fetch, query)]

    async def artifacts(
        self, table: Table, *, owner: str | None, account_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """QBR pages or opportunities, newest first, with the account's name; one owner's or one account's."""
        query = _artifact_query(table).order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit)
        if owner is not None:
            query = query.where(ACCOUNTS.c.rep_email == owner)
        if account_id is not None:
            query = query.where(table.c.account_id == account_id)
        return await asyncio.to_thread(self._fetch, query)

    async def artifact(self, table: Table, artifact_id: str) -> dict[str, Any] | None:
        """One QBR page or opportunity with its account's name and owner, or None."""
        rows = await asyncio.to_thread(self._fetch, _artifact_query(table).where(table.c.id == artifact_id))
        return rows[0] if rows else None

    def _fetch(self, query: Select[Any]) -> list[dict[str, Any]]:
        with self._store._transaction(write=False) as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def _refresh(self) -> int:
        with _REFRESH_LOCK:
            with self._store._transaction(write=False) as connection:
                mark = connection.execute(select(DESK_MARKS.c.value).where(DESK_MARKS.c.name == ACCOUNTS_MARK)).scalar()
                newest_update = connection.execute(select(func.max(ACCOUNTS.c.updated_at))).scalar()
            read = 0
            while True:
                with self._store._transaction(write=True) as connection:
                    done = self._refresh_step(connection)
                read += done
                if done < REFRESH_BATCH:
                    break
            if newest_update is not None and (mark is None or newest_update.isoformat() > mark):
                with self._store._transaction(write=True) as connection:
                    if mark is not None:  # rows written above already carry their account's current fields
                        copy_account_fields(connection, datetime.fromisoformat(mark))
                    row = {"name": ACCOUNTS_MARK, "value": newest_update.isoformat()}
                    upsert(connection, DESK_MARKS, "name", [row])
            return read

    def _refresh_step(self, connection: Connection) -> int:
        """Apply the next batch of score rows, one day at a time, snapshotting each day's RAG counts."""
        lock_book(connection)
        h = HEALTH_SCORES.c
        query = (
            select(h.id, h.account_id, h.score, h.rag, h.churn_risk_level, h.breakdown, h.computed_at)
            .where(h.id > book_mark(connection))
            .order_by(h.id)
            .limit(REFRESH_BATCH)
        )
        rows = connection.execute(query).mappings().all()
        by_day: dict[str, dict[str, Mapping[str, Any]]] = {}
        for row in rows:
            scores = by_day.setdefault(row["computed_at"].date().isoformat(), {})
            kept = scores.get(row["account_id"])
            if kept is None or row["computed_at"] >= kept["computed_at"]:
                scores[row["account_id"]] = dict(row)
        for day, newest in sorted(by_day.items()):
            day_rows = list(newest.values())
            health = health_rows(
                [row["account_id"] for row in day_rows],
                [row["score"] for row in day_rows],
                [row["rag"] for row in day_rows],
                [row["churn_risk_level"] for row in day_rows],
                [_breakdown(row["breakdown"]) for row in day_rows],
                [row["computed_at"] for row in day_rows],
                max_points=self._max_points,
            )
            last_id = rows[-1]["id"] if day == max(by_day) else max(row["id"] for row in day_rows)
            apply_day(connection, day, health, last_id=last_id)
        return len(rows)


def _breakdown(value: Any) -> dict[str, float]:
    """A stored breakdown, decoded unless the driver did."""
    return value if isinstance(value, dict) else dict(from_json(value))


def _artifact_query(table: Table) -> Select[Any]:
    columns = (
        table.c.id,
        table.c.account_id,
        table.c.created_at,
        table.c.payload,
        ACCOUNTS.c.name,
        ACCOUNTS.c.rep_email,
    )
    return select(*columns).select_from(table.join(ACCOUNTS, ACCOUNTS.c.account_id == table.c.account_id, isouter=True))


def _filtered(query: Select[Any], where: BookFilter, today: date) -> Select[Any]:
    h = ACCOUNT_HEALTH.c
    conditions: list[Any] = [func.coalesce(h.status, "active") == "active"]
    if where.owner:
        conditions.append(h.rep_email == where.owner)
    if where.rag:
        conditions.append(h.rag == where.rag)
    if where.segment:
        conditions.append(h.segment == where.segment)
    if where.renewal_within_days is not None:
        until = (today + timedelta(days=where.renewal_within_days)).isoformat()
        conditions.append(h.renewal_date.between(today.isoformat(), until))
    if where.search:
        pattern = f"%{where.search.lower()}%"
        conditions.append(or_(func.lower(h.name).like(pattern), func.lower(h.account_id).like(pattern)))
    return query.where(and_(*conditions))
