"""The review side of the SQL store: draft review statuses, feedback labels, desk users and account look-ups.

`ReviewStore` works on an `SQLStore`'s database (same engine, same transactions); every query here is one
indexed statement, so the desk stays fast on a large book.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, and_, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from src.app.schemas import CSMHealthScore
from src.app.tools.store import CSMStore, DraftRecord, DraftStatus
from src.app.tools.store.sql import SQLStore
from src.app.tools.store.sql_score_rows import STORED_SCORE_COLUMNS, stored_score
from src.app.tools.store.sql_tables import ACCOUNTS, DRAFTS, FEEDBACK, HEALTH_SCORES, USERS, as_utc, utc_now

Role = Literal["lead", "rep"]
ROLES: tuple[Role, ...] = ("lead", "rep")
FALSE_ALARM = "false_alarm"
"""The feedback label of a churn alert a person rejected as a false alarm."""


class UserExists(ValueError):
    """A desk user with this email is already in the store."""


@dataclass(frozen=True)
class DeskUser:
    """A person who may sign in to the review desk."""

    email: str
    role: Role
    password_hash: str


@dataclass(frozen=True)
class AccountRow:
    """An account as the desk lists it: the indexed copies of the record's owner, ARR, segment and renewal."""

    account_id: str
    name: str
    status: str
    rep_email: str | None
    arr: float | None
    segment: str | None
    renewal_date: str | None
    updated_at: datetime | None = None
    """When the account record was last written to the store (an import, a sync, the sample book)."""


@dataclass(frozen=True)
class FeedbackRow:
    """One label a person put on the agent's output (a rejected draft and why)."""

    account_id: str
    draft_id: str
    kind: str
    label: str
    reason: str
    risk_state: str | None
    by: str
    at: datetime


class ReviewStore:
    """Review statuses, feedback, users and account look-ups on the database of `store`."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store

    @property
    def store(self) -> SQLStore:
        """The SQL store this works on."""
        return self._store

    def _transaction(self, *, write: bool) -> AbstractContextManager[Connection]:
        # The same engine and (SQLite) writer lock as the store's own writes.
        return self._store._transaction(write=write)

    def _fetch(self, query: Select[Any] | Select[Any, Any]) -> list[dict[str, Any]]:
        with self._transaction(write=False) as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    async def drafts(
        self,
        *,
        status: DraftStatus | None = None,
        account_id: str | None = None,
        owner: str | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> list[DraftRecord]:
        """Drafts newest first, filtered by status, account, owner (the account's rep) and kind."""
        query = select(DRAFTS).order_by(DRAFTS.c.created_at.desc(), DRAFTS.c.draft_id.desc()).limit(limit)
        if status is not None:
            query = query.where(_status_is(status))
        if account_id is not None:
            query = query.where(DRAFTS.c.account_id == account_id)
        if owner is not None:
            owned = select(ACCOUNTS.c.account_id).where(ACCOUNTS.c.rep_email == owner)
            query = query.where(DRAFTS.c.account_id.in_(owned))
        if kind is not None:
            query = query.where(DRAFTS.c.kind == kind)
        rows = await asyncio.to_thread(self._fetch, query)
        return [DraftRecord.model_validate(row) for row in rows]

    async def draft(self, draft_id: str) -> DraftRecord | None:
        """One draft by id, or None."""
        rows = await asyncio.to_thread(self._fetch, select(DRAFTS).where(DRAFTS.c.draft_id == draft_id))
        return DraftRecord.model_validate(rows[0]) if rows else None

    async def draft_counts(self, *, owner: str | None = None) -> dict[str, int]:
        """How many drafts have each review status (for one owner's accounts, or all)."""
        status = func.coalesce(DRAFTS.c.status, "pending")
        query = select(status.label("status"), func.count().label("n")).group_by(status)
        if owner is not None:
            query = query.where(
                DRAFTS.c.account_id.in_(select(ACCOUNTS.c.account_id).where(ACCOUNTS.c.rep_email == owner))
            )
        rows = await asyncio.to_thread(self._fetch, query)
        return {str(row["status"]): int(row["n"]) for row in rows}

    async def set_review(
        self,
        draft_id: str,
        *,
        status: DraftStatus,
        by: str,
        at: datetime,
        reason: str | None = None,
        subject: str | None = None,
        body_html: str | None = None,
        body_text: str | None = None,
    ) -> bool:
        """Move a pending draft to `status`; False when it was no longer pending (someone else decided first)."""
        values: dict[str, Any] = {"status": status, "reviewed_by": by, "reviewed_at": at, "reason": reason}
        edits = {"subject": subject, "body_html": body_html, "body_text": body_text}
        values.update({key: value for key, value in edits.items() if value is not None})
        statement = update(DRAFTS).where(DRAFTS.c.draft_id == draft_id, _status_is("pending")).values(**values)

        def run() -> bool:
            with self._transaction(write=True) as connection:
                return connection.execute(statement).rowcount == 1

        return await asyncio.to_thread(run)

    async def set_location(self, draft_id: str, location: str | None) -> None:
        """Record where the mailbox copy of a draft is (after a held draft was delivered)."""
        statement = update(DRAFTS).where(DRAFTS.c.draft_id == draft_id).values(location=location)

        def run() -> None:
            with self._transaction(write=True) as connection:
                connection.execute(statement)

        await asyncio.to_thread(run)

    async def record_feedback(self, row: FeedbackRow) -> None:
        """Keep one feedback label."""
        values = {**row.__dict__}

        def run() -> None:
            with self._transaction(write=True) as connection:
                connection.execute(insert(FEEDBACK), values)

        await asyncio.to_thread(run)

    async def feedback(self, *, account_id: str | None = None, label: str | None = None) -> list[FeedbackRow]:
        """Feedback labels, newest first (what a backtest reads as human labels)."""
        query = select(FEEDBACK).order_by(FEEDBACK.c.at.desc(), FEEDBACK.c.id.desc())
        if account_id is not None:
            query = query.where(FEEDBACK.c.account_id == account_id)
        if label is not None:
            query = query.where(FEEDBACK.c.label == label)
        rows = await asyncio.to_thread(self._fetch, query)
        return [FeedbackRow(**{k: v for k, v in row.items() if k != "id"}) for row in rows]

    async def false_alarm_states(self, account_ids: Sequence[str], *, since: datetime) -> dict[str, set[str]]:
        """Per account, the risk states of its churn alerts rejected as false alarms since `since`."""
        query = select(FEEDBACK.c.account_id, FEEDBACK.c.risk_state).where(
            FEEDBACK.c.label == FALSE_ALARM, FEEDBACK.c.at >= as_utc(since), FEEDBACK.c.risk_state.is_not(None)
        )
        wanted = set(account_ids)
        states: dict[str, set[str]] = {}
        for row in await asyncio.to_thread(self._fetch, query):
            if row["account_id"] in wanted:
                states.setdefault(str(row["account_id"]), set()).add(str(row["risk_state"]))
        return states

    async def add_user(self, email: str, *, role: Role, password_hash: str, replace: bool = False) -> None:
        """Add a desk user (UserExists when the email is taken, unless `replace`)."""
        row = {"email": email, "role": role, "password_hash": password_hash, "created_at": utc_now()}

        def run() -> None:
            with self._transaction(write=True) as connection:
                if replace:
                    connection.execute(update(USERS).where(USERS.c.email == email).values(**row))
                    if connection.execute(select(USERS.c.email).where(USERS.c.email == email)).first():
                        return
                connection.execute(insert(USERS), row)

        try:
            await asyncio.to_thread(run)
        except IntegrityError:
            raise UserExists(f"A desk user {email!r} already exists (use --replace to reset the password)") from None

    async def user(self, email: str) -> DeskUser | None:
        """The desk user with this email, or None."""
        rows = await asyncio.to_thread(self._fetch, select(USERS).where(USERS.c.email == email))
        if not rows:
            return None
        return DeskUser(email=rows[0]["email"], role=rows[0]["role"], password_hash=rows[0]["password_hash"])

    async def users(self) -> list[DeskUser]:
        """Every desk user, by email."""
        rows = await asyncio.to_thread(self._fetch, select(USERS).order_by(USERS.c.email))
        return [DeskUser(email=r["email"], role=r["role"], password_hash=r["password_hash"]) for r in rows]

    async def accounts(
        self, *, owner: str | None = None, search: str | None = None, limit: int = 100
    ) -> list[AccountRow]:
        """Accounts by name, optionally one owner's, matching `search` in the name or id (case-insensitive)."""
        query = _account_columns().order_by(ACCOUNTS.c.name, ACCOUNTS.c.account_id).limit(limit)
        if owner is not None:
            query = query.where(ACCOUNTS.c.rep_email == owner)
        if search:
            pattern = f"%{search.lower()}%"
            query = query.where(
                or_(func.lower(ACCOUNTS.c.name).like(pattern), func.lower(ACCOUNTS.c.account_id).like(pattern))
            )
        rows = await asyncio.to_thread(self._fetch, query)
        return [AccountRow(**row) for row in rows]

    async def account(self, account_id: str) -> tuple[AccountRow, dict[str, Any]] | None:
        """One account's listing row and its full record, or None."""
        query = select(*_account_columns().selected_columns, ACCOUNTS.c.record).where(
            ACCOUNTS.c.account_id == account_id
        )
        rows = await asyncio.to_thread(self._fetch, query)
        if not rows:
            return None
        record = rows[0].pop("record")
        return AccountRow(**rows[0]), dict(record)

    async def find_accounts(self, name_or_id: str, *, owner: str | None = None) -> list[AccountRow]:
        """The account with this id, else those whose name matches exactly, else those containing it."""
        exact = await asyncio.to_thread(
            self._fetch, _owned(_account_columns().where(ACCOUNTS.c.account_id == name_or_id), owner)
        )
        if exact:
            return [AccountRow(**row) for row in exact]
        named = _account_columns().where(func.lower(ACCOUNTS.c.name) == name_or_id.lower())
        rows = await asyncio.to_thread(self._fetch, _owned(named, owner))
        if rows:
            return [AccountRow(**row) for row in rows]
        return await self.accounts(owner=owner, search=name_or_id, limit=20)

    async def score_history(self, account_id: str, *, limit: int = 400) -> list[CSMHealthScore]:
        """The account's stored scores, oldest first (at most the newest `limit`)."""
        query = (
            select(HEALTH_SCORES.c.payload, *STORED_SCORE_COLUMNS)
            .where(HEALTH_SCORES.c.account_id == account_id)
            .order_by(HEALTH_SCORES.c.computed_at.desc(), HEALTH_SCORES.c.id.desc())
            .limit(limit)
        )
        rows = await asyncio.to_thread(self._fetch, query)
        return [stored_score(row["payload"], [row[c.name] for c in STORED_SCORE_COLUMNS]) for row in reversed(rows)]

    async def names(self, account_ids: list[str]) -> dict[str, str]:
        """Account names by id (for the ids given)."""
        if not account_ids:
            return {}
        query = select(ACCOUNTS.c.account_id, ACCOUNTS.c.name).where(
            ACCOUNTS.c.account_id.in_(sorted(set(account_ids)))
        )
        return {row["account_id"]: row["name"] for row in await asyncio.to_thread(self._fetch, query)}

    async def owner_of(self, account_id: str | None) -> str | None:
        """The rep who owns an account (None for no account or no rep)."""
        if account_id is None:
            return None
        query = select(ACCOUNTS.c.rep_email).where(ACCOUNTS.c.account_id == account_id)
        rows = await asyncio.to_thread(self._fetch, query)
        return rows[0]["rep_email"] if rows else None


def review_store(store: CSMStore) -> ReviewStore | None:
    """The review store of `store`'s SQL database (also behind Notion), or None when it has none."""
    inner = store if isinstance(store, SQLStore) else getattr(store, "_inner", None)
    return ReviewStore(inner) if isinstance(inner, SQLStore) else None


async def recent_false_alarms(store: CSMStore, account_ids: Sequence[str], *, since: datetime) -> dict[str, set[str]]:
    """Per account, the risk states rejected as false alarms since `since` (none without a SQL store)."""
    reviews = review_store(store)
    return {} if reviews is None else await reviews.false_alarm_states(account_ids, since=since)


def _status_is(status: DraftStatus) -> Any:
    if status == "pending":
        return or_(DRAFTS.c.status.is_(None), DRAFTS.c.status == "pending")
    return and_(DRAFTS.c.status == status)


def _account_columns() -> Select[Any]:
    columns = (ACCOUNTS.c.account_id, ACCOUNTS.c.name, ACCOUNTS.c.status, ACCOUNTS.c.rep_email, ACCOUNTS.c.arr)
    return select(*columns, ACCOUNTS.c.segment, ACCOUNTS.c.renewal_date, ACCOUNTS.c.updated_at)


def _owned(query: Select[Any], owner: str | None) -> Select[Any]:
    return query if owner is None else query.where(ACCOUNTS.c.rep_email == owner)
