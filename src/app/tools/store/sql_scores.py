"""The SQL store's score history: saving scores (with the desk's book) and reading each account's newest ones."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from pydantic_core import from_json
from sqlalchemy import FromClause, Select, Text, cast, insert, select
from sqlalchemy.engine import URL, Connection

from src.app.schemas import DEFAULT_SCORECARD_NAME, DEFAULT_SCORECARD_VERSION, CSMHealthScore, PriorScore
from src.app.tools.store.sql_book_rows import keep_book, lock_book
from src.app.tools.store.sql_engine import driver_rows, insert_bound_columns
from src.app.tools.store.sql_score_rows import STORED_SCORE_COLUMNS, score_columns, stored_score
from src.app.tools.store.sql_tables import HEALTH_SCORES, as_utc, id_table

SEEK_BATCH_SIZE = 10_000
"""Ids per newest-score lookup (they travel as one parameter, so no parameter limit applies)."""
INSERT_BATCH_SIZE = 900
"""Score rows per executemany batch where the driver binds rows one statement at a time (PostgreSQL)."""


class ScoreRows:
    """Saving and reading back the score history (mixed into `SQLStore`)."""

    _url: URL
    _transaction: Callable[..., AbstractContextManager[Connection]]

    async def latest_scores(self, account_ids: Sequence[str] | None = None) -> dict[str, CSMHealthScore]:
        """The newest stored score per account (by `computed_at`, then insertion order)."""
        return await asyncio.to_thread(self._latest_scores, account_ids)

    async def prior_scores(self, account_ids: Sequence[str]) -> dict[str, PriorScore]:
        """The newest stored score per account as the columns a scan compares with (no payload is read)."""
        return await asyncio.to_thread(self._prior_scores, account_ids)

    async def save_scores(self, scores: Sequence[CSMHealthScore]) -> None:
        """Append scores to the history, one row per account and scan."""
        await asyncio.to_thread(self._save_scores, scores)

    def _latest_scores(self, account_ids: Sequence[str] | None) -> dict[str, CSMHealthScore]:
        sqlite = self._url.get_backend_name() == "sqlite"
        as_text = {"breakdown", "computed_at"} if sqlite else {"breakdown"}
        columns = tuple(cast(c, Text) if c.name in as_text else c for c in STORED_SCORE_COLUMNS)
        rows = self._newest_rows(account_ids, (cast(HEALTH_SCORES.c.payload, Text), *columns))
        scores = [stored_score(payload, values) for payload, *values in rows]
        for score in scores:  # pydantic reads "Z" as its own zero-offset zone; the store hands back `UTC` itself
            score.computed_at = as_utc(score.computed_at)
        return {score.account_id: score for score in scores}

    def _prior_scores(self, account_ids: Sequence[str]) -> dict[str, PriorScore]:
        h = HEALTH_SCORES.c
        sqlite = self._url.get_backend_name() == "sqlite"
        columns = (
            h.account_id,
            h.score,
            h.rag,
            h.churn_risk_level,
            cast(h.breakdown, Text),
            cast(h.computed_at, Text) if sqlite else h.computed_at,
            h.scorecard_name,
            h.scorecard_version,
        )
        moments: dict[Any, datetime] = {}  # a scan stamps every row alike: each distinct value is parsed once
        prior = {}
        for account_id, score, rag, level, breakdown, when, name, version in self._newest_rows(account_ids, columns):
            moment = moments.get(when)
            if moment is None:
                moment = moments[when] = as_utc(datetime.fromisoformat(when) if isinstance(when, str) else when)
            card = (name or DEFAULT_SCORECARD_NAME, version or DEFAULT_SCORECARD_VERSION)
            prior[account_id] = PriorScore(account_id, score, rag, level, from_json(breakdown), moment, card)
        return prior

    def _newest_rows(self, account_ids: Sequence[str] | None, columns: tuple[Any, ...]) -> list[Any]:
        """The given columns of each wanted account's newest score row (`latest_scores_query`)."""
        if isinstance(account_ids, str):
            raise TypeError(f"account_ids must be a sequence of ids, not the string {account_ids!r}")
        dialect = self._url.get_backend_name()
        wanted = None if account_ids is None else sorted(set(account_ids))
        batches = [None] if wanted is None else _batches(wanted, SEEK_BATCH_SIZE)
        with self._transaction(write=False) as connection:
            queries = [latest_scores_query(batch, dialect, columns) for batch in batches]
            return [row for query in queries for row in driver_rows(connection, query)]

    def _save_scores(self, scores: Sequence[CSMHealthScore]) -> None:
        """Insert the score rows and, in the same transaction, bring the desk's book tables up to them."""
        if not scores:
            return
        columns = score_columns(scores)
        with self._transaction(write=True) as connection:
            lock_book(connection)
            _insert_columns(connection, columns)
            keep_book(connection, scores)


def _insert_columns(connection: Connection, columns: dict[str, list[Any]]) -> None:
    """Insert score rows given as columns: one driver executemany on SQLite, batches of rows elsewhere."""
    if connection.dialect.name == "sqlite":
        insert_bound_columns(connection, HEALTH_SCORES, columns)
        return
    rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    for start in range(0, len(rows), INSERT_BATCH_SIZE):
        connection.execute(insert(HEALTH_SCORES), rows[start : start + INSERT_BATCH_SIZE])


def _batches(ids: list[str], size: int) -> list[list[str]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def latest_scores_query(
    account_ids: Sequence[str] | None, dialect: str, columns: tuple[Any, ...] = (cast(HEALTH_SCORES.c.payload, Text),)
) -> Select[Any]:
    """`columns` of each wanted account's newest score row (by default its payload as JSON text), by index seeks.

    The cost does not grow with the history's length, unlike ranking every stored row of the accounts. The wanted
    ids arrive as one JSON (SQLite) or array (PostgreSQL) parameter; `None` wants every account with a score.
    """
    wanted: FromClause
    if account_ids is None:
        wanted = select(HEALTH_SCORES.c.account_id.label("value")).distinct().subquery("wanted")
    else:
        wanted = id_table(account_ids, dialect)
    history = HEALTH_SCORES.alias("history")
    newest = (
        select(history.c.id)
        .where(history.c.account_id == wanted.c.value)
        .order_by(history.c.computed_at.desc(), history.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return select(*columns).where(HEALTH_SCORES.c.id.in_(select(newest).select_from(wanted)))


def history_query(account_ids: Sequence[str], since: datetime) -> Select[Any]:
    """The wanted accounts' scores computed at or after `since`, oldest first, with their scorecard columns."""
    table = HEALTH_SCORES.c
    columns = (table.account_id, table.computed_at, table.score, table.scorecard_name, table.scorecard_version)
    return (
        select(*columns)
        .where(table.account_id.in_(list(account_ids)), table.computed_at >= as_utc(since))
        .order_by(table.account_id, table.computed_at, table.id)
    )


def history_by_account(rows: Iterable[Any]) -> dict[str, list[tuple[datetime, float, tuple[str, str]]]]:
    """`history_query` rows per account; a row from before scorecards were recorded is the default's (version 1)."""
    history: dict[str, list[tuple[datetime, float, tuple[str, str]]]] = {}
    for account_id, when, score, name, version in rows:
        card = (name or DEFAULT_SCORECARD_NAME, version or DEFAULT_SCORECARD_VERSION)
        history.setdefault(str(account_id), []).append((as_utc(when), float(score), card))
    return history
