"""The book as the desk shows it, from indexed tables: each account's newest score and daily RAG counts.

`account_health` (one row per account) and `book_days` (RAG counts per day) are kept from the score history
incrementally: `BookStore.refresh()` reads only score rows newer than the last one it read, a day at a time,
so after a whole-book scan the first page view reads that scan once and every later view none. The book page's
queries are then each one indexed statement over `account_health` joined to `accounts`.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pydantic_core import from_json
from sqlalchemy import Select, Table, and_, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from src.app.schemas import CSMHealthScore
from src.app.tools.store.sql import SQLStore
from src.app.tools.store.sql_tables import (
    ACCOUNT_HEALTH,
    ACCOUNTS,
    BOOK_DAYS,
    HEALTH_SCORES,
)

RAGS = ("RED", "AMBER", "GREEN")
REFRESH_BATCH = 20_000
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
    name: str
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
        """Bring `account_health` and `book_days` up to date with the score history; returns rows read."""
        return await asyncio.to_thread(self._refresh)

    async def counts(self, where: BookFilter, *, today: date) -> dict[str, dict[str, float]]:
        """Accounts and ARR per RAG in the filtered book."""
        query = select(
            ACCOUNT_HEALTH.c.rag, func.count().label("n"), func.coalesce(func.sum(ACCOUNTS.c.arr), 0).label("arr")
        )
        query = _filtered(query.select_from(_joined()), where, today).group_by(ACCOUNT_HEALTH.c.rag)
        rows = await asyncio.to_thread(self._fetch, query)
        found = {row["rag"]: {"accounts": int(row["n"]), "arr": float(row["arr"])} for row in rows}
        return {rag: found.get(rag, {"accounts": 0, "arr": 0.0}) for rag in RAGS}

    async def rows(self, where: BookFilter, *, today: date, order: str = "risk", limit: int = 25) -> list[BookRow]:
        """Accounts of the filtered book: riskiest first (`risk`), biggest fall (`down`) or rise (`up`)."""
        orders = {
            "risk": (ACCOUNT_HEALTH.c.score.asc(), ACCOUNT_HEALTH.c.account_id),
            "down": (ACCOUNT_HEALTH.c.delta.asc(), ACCOUNT_HEALTH.c.account_id),
            "up": (ACCOUNT_HEALTH.c.delta.desc(), ACCOUNT_HEALTH.c.account_id),
        }
        query = _filtered(select(*_row_columns()).select_from(_joined()), where, today)
        if order != "risk":
            query = query.where(ACCOUNT_HEALTH.c.delta < 0 if order == "down" else ACCOUNT_HEALTH.c.delta > 0)
        rows = await asyncio.to_thread(self._fetch, query.order_by(*orders[order]).limit(limit))
        return [BookRow(**row) for row in rows]

    async def movement(
        self, *, today: date, windows: tuple[int, ...] = (7, 30, 90)
    ) -> dict[int, dict[str, int] | None]:
        """The whole book's RAG counts now minus those at the end of the day N days ago (None: no such day)."""
        rows = await asyncio.to_thread(
            self._fetch, select(BOOK_DAYS.c.day, BOOK_DAYS.c.counts).order_by(BOOK_DAYS.c.day)
        )
        days = [(row["day"], row["counts"]) for row in rows]
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
        """Every rep who owns an account (by the `rep_email` index)."""
        query = (
            select(ACCOUNTS.c.rep_email)
            .where(ACCOUNTS.c.rep_email.is_not(None))
            .distinct()
            .order_by(ACCOUNTS.c.rep_email)
        )
        return [str(row["rep_email"]) for row in await asyncio.to_thread(self._fetch, query)]

    async def segments(self) -> list[str]:
        """Every segment an account is in."""
        query = (
            select(ACCOUNTS.c.segment).where(ACCOUNTS.c.segment.is_not(None)).distinct().order_by(ACCOUNTS.c.segment)
        )
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
            read = 0
            while True:
                with self._store._transaction(write=True) as connection:
                    done = self._refresh_step(connection)
                read += done
                if done < REFRESH_BATCH:
                    return read

    def _refresh_step(self, connection: Connection) -> int:
        """Apply the next batch of score rows, one day at a time, snapshotting each day's RAG counts."""
        last = connection.execute(select(func.max(BOOK_DAYS.c.last_score_id))).scalar() or 0
        query = (
            select(HEALTH_SCORES.c.id, HEALTH_SCORES.c.computed_at, HEALTH_SCORES.c.payload)
            .where(HEALTH_SCORES.c.id > last)
            .order_by(HEALTH_SCORES.c.id)
            .limit(REFRESH_BATCH)
        )
        rows = connection.execute(query).all()
        by_day: dict[str, list[tuple[int, CSMHealthScore]]] = {}
        for row_id, computed_at, payload in rows:
            score = CSMHealthScore.model_validate(payload if isinstance(payload, dict) else from_json(payload))
            by_day.setdefault(computed_at.date().isoformat(), []).append((row_id, score))
        for day in sorted(by_day):
            newest: dict[str, CSMHealthScore] = {}
            for _, score in by_day[day]:
                kept = newest.get(score.account_id)
                if kept is None or score.computed_at >= kept.computed_at:
                    newest[score.account_id] = score
            _upsert(connection, ACCOUNT_HEALTH, "account_id", [self._health_row(s) for s in newest.values()])
            counts = connection.execute(select(ACCOUNT_HEALTH.c.rag, func.count()).group_by(ACCOUNT_HEALTH.c.rag)).all()
            snapshot = {
                "day": day,
                "counts": {rag: int(n) for rag, n in counts},
                "last_score_id": max(i for i, _ in by_day[day]),
            }
            _upsert(connection, BOOK_DAYS, "day", [snapshot])
        return len(rows)

    def _health_row(self, score: CSMHealthScore) -> dict[str, Any]:
        losing = [
            (name, round(best - score.signal_breakdown.get(name, 0.0), 2), round(score.signal_deltas.get(name, 0.0), 2))
            for name, best in self._max_points.items()
            if best - score.signal_breakdown.get(name, 0.0) > 0
        ]
        losing.sort(key=lambda item: (-item[1], item[0]))
        return {
            "account_id": score.account_id,
            "score": score.score,
            "rag": score.rag,
            "previous_score": score.previous_score,
            "delta": score.score_delta,
            "churn_risk_level": score.churn_risk_level,
            "top_signals": [list(item) for item in losing[:3]],
            "computed_at": score.computed_at,
        }


def _upsert(connection: Connection, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    statement: Any = (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(table)
    columns = {name: statement.excluded[name] for name in rows[0] if name != key}
    connection.execute(statement.on_conflict_do_update(index_elements=[key], set_=columns), rows)


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


def _joined() -> Any:
    return ACCOUNT_HEALTH.join(ACCOUNTS, ACCOUNTS.c.account_id == ACCOUNT_HEALTH.c.account_id)


def _row_columns() -> tuple[Any, ...]:
    a, h = ACCOUNTS.c, ACCOUNT_HEALTH.c
    return (
        a.account_id,
        a.name,
        a.rep_email,
        a.arr,
        a.segment,
        a.renewal_date,
        h.score,
        h.rag,
        h.delta,
        h.churn_risk_level,
        h.top_signals,
    )


def _filtered(query: Select[Any], where: BookFilter, today: date) -> Select[Any]:
    conditions: list[Any] = [ACCOUNTS.c.status == "active"]
    if where.owner:
        conditions.append(ACCOUNTS.c.rep_email == where.owner)
    if where.rag:
        conditions.append(ACCOUNT_HEALTH.c.rag == where.rag)
    if where.segment:
        conditions.append(ACCOUNTS.c.segment == where.segment)
    if where.renewal_within_days is not None:
        until = (today + timedelta(days=where.renewal_within_days)).isoformat()
        conditions.append(ACCOUNTS.c.renewal_date.between(today.isoformat(), until))
    if where.search:
        pattern = f"%{where.search.lower()}%"
        conditions.append(
            or_(func.lower(ACCOUNTS.c.name).like(pattern), func.lower(ACCOUNTS.c.account_id).like(pattern))
        )
    return query.where(and_(*conditions))
