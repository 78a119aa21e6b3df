"""Reads of the SQL store's history: score rows of accounts over a window, an account's newest QBR, churn alerts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, Text, cast, select
from sqlalchemy.engine import URL

from src.app.schemas import CSMHealthScore, QBRContent
from src.app.tools.store import AlertRecord
from src.app.tools.store.sql_score_rows import STORED_SCORE_COLUMNS, stored_score
from src.app.tools.store.sql_tables import ALERTS, AUDIT_LOG, HEALTH_SCORES, QBR_PAGES, as_utc, id_table

BATCH = 500
"""Account ids per query."""


def read_score_history(
    transaction: Callable[..., AbstractContextManager[Connection]],
    account_ids: Sequence[str],
    since: datetime | None,
    until: datetime | None,
) -> dict[str, list[CSMHealthScore]]:
    """Stored scores per account computed in [`since`, `until`], oldest first."""
    history: dict[str, list[CSMHealthScore]] = {}
    with transaction(write=False) as connection:
        for start in range(0, len(account_ids), BATCH):
            batch = list(account_ids[start : start + BATCH])
            payload = cast(HEALTH_SCORES.c.payload, Text)
            query = select(payload, *STORED_SCORE_COLUMNS).where(HEALTH_SCORES.c.account_id.in_(batch))
            if since is not None:
                query = query.where(HEALTH_SCORES.c.computed_at >= since)
            if until is not None:
                query = query.where(HEALTH_SCORES.c.computed_at <= until)
            query = query.order_by(HEALTH_SCORES.c.computed_at, HEALTH_SCORES.c.id)
            for text, *columns in connection.execute(query):
                score = stored_score(text, columns)
                score.computed_at = as_utc(score.computed_at)
                history.setdefault(score.account_id, []).append(score)
    return history


def latest_qbr_query(account_id: str, period: str | None) -> Select[Any]:
    """The newest stored QBR payload of an account (for `period`, when given)."""
    query = select(QBR_PAGES.c.payload).where(QBR_PAGES.c.account_id == account_id)
    if period is not None:
        query = query.where(QBR_PAGES.c.period == period)
    return query.order_by(QBR_PAGES.c.created_at.desc(), QBR_PAGES.c.id.desc()).limit(1)


def finished_qbrs_query(period: str, trigger: str | None) -> Select[Any]:
    """Ids of accounts with a finished QBR for `period` (and `trigger`, when given).

    A QBR is finished once its `page:qbr` audit row exists, the last thing `draft_qbr` writes after the draft
    and the page (on Notion too): a run that failed or was killed before leaves the QBR to the next run.
    """
    audited = (AUDIT_LOG.c.idempotency_key == QBR_PAGES.c.idempotency_key) & (AUDIT_LOG.c.artifact == "page:qbr")
    query = select(QBR_PAGES.c.account_id).select_from(QBR_PAGES.join(AUDIT_LOG, audited))
    query = query.where(QBR_PAGES.c.period == period).distinct()
    return query if trigger is None else query.where(QBR_PAGES.c.trigger == trigger)


class HistoryReads:
    """The SQL store's reads of history (mixed into `SQLStore`): scores over a window, QBRs, churn alerts."""

    _url: URL
    _transaction: Callable[..., AbstractContextManager[Connection]]
    _fetch_mappings: Callable[[Any], list[dict[str, Any]]]

    async def score_history(
        self, account_ids: Sequence[str], *, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, list[CSMHealthScore]]:
        """Stored scores per account computed in [`since`, `until`], oldest first (accounts without any are absent)."""
        return await asyncio.to_thread(read_score_history, self._transaction, list(account_ids), since, until)

    async def latest_qbr(self, account_id: str, period: str | None = None) -> QBRContent | None:
        """The newest stored QBR of an account (for `period`, when given), or None."""
        rows = await asyncio.to_thread(self._fetch_mappings, latest_qbr_query(account_id, period))
        return QBRContent.model_validate(rows[0]["payload"]) if rows else None

    async def last_alerts(self, account_ids: Sequence[str]) -> dict[str, AlertRecord]:
        """The most recent churn alert per account, for the accounts that have one."""
        return await asyncio.to_thread(self._last_alerts, account_ids)

    async def list_alerts(self, account_id: str | None = None, *, limit: int = 100) -> list[AlertRecord]:
        """Churn alerts, newest first, for one account or all."""
        return await asyncio.to_thread(self._list_alerts, account_id, limit)

    def _last_alerts(self, account_ids: Sequence[str]) -> dict[str, AlertRecord]:
        newest: dict[str, AlertRecord] = {}
        if not account_ids:
            return newest
        wanted = id_table(sorted(set(account_ids)), self._url.get_backend_name())  # one parameter however many
        query = (
            select(ALERTS)
            .where(ALERTS.c.account_id.in_(select(wanted.c.value)))
            .order_by(ALERTS.c.account_id, ALERTS.c.alerted_at.desc(), ALERTS.c.id.desc())
        )
        for row in self._fetch_mappings(query):
            newest.setdefault(str(row["account_id"]), AlertRecord.model_validate(row))
        return newest

    def _list_alerts(self, account_id: str | None, limit: int) -> list[AlertRecord]:
        query = select(ALERTS).order_by(ALERTS.c.alerted_at.desc(), ALERTS.c.id.desc()).limit(limit)
        if account_id is not None:
            query = query.where(ALERTS.c.account_id == account_id)
        return [AlertRecord.model_validate(row) for row in self._fetch_mappings(query)]
