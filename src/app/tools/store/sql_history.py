"""Reads of the SQL store's history: score rows of accounts over a window, and an account's newest QBR."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, Text, cast, select

from src.app.schemas import CSMHealthScore, QBRContent
from src.app.tools.store.sql_tables import AUDIT_LOG, HEALTH_SCORES, QBR_PAGES, as_utc

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
            query = select(cast(HEALTH_SCORES.c.payload, Text)).where(HEALTH_SCORES.c.account_id.in_(batch))
            if since is not None:
                query = query.where(HEALTH_SCORES.c.computed_at >= since)
            if until is not None:
                query = query.where(HEALTH_SCORES.c.computed_at <= until)
            query = query.order_by(HEALTH_SCORES.c.computed_at, HEALTH_SCORES.c.id)
            for payload in connection.execute(query).scalars():
                score = CSMHealthScore.model_validate_json(payload)
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
    """The `ScoreHistory` capability of the SQL store (mixed into `SQLStore`)."""

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
