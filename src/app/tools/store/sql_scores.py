"""The SQL store's score-history queries: each account's newest score, and its recent scores with their scorecard."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic_core import to_json
from sqlalchemy import FromClause, Select, Text, bindparam, cast, func, select
from sqlalchemy.dialects import postgresql

from src.app.schemas import DEFAULT_SCORECARD_NAME, DEFAULT_SCORECARD_VERSION
from src.app.tools.store.sql_tables import ACCOUNT_ID_TYPE, HEALTH_SCORES, as_utc


def latest_scores_query(account_ids: Sequence[str] | None, dialect: str) -> Select[str]:
    """Each wanted account's newest score payload as JSON text, found by one index seek per account.

    The cost does not grow with the history's length, unlike ranking every stored row of the accounts. The wanted
    ids arrive as one JSON (SQLite) or array (PostgreSQL) parameter; `None` wants every account with a score.
    """
    wanted: FromClause
    if account_ids is None:
        wanted = select(HEALTH_SCORES.c.account_id.label("value")).distinct().subquery("wanted")
    elif dialect == "postgresql":
        ids = bindparam("wanted_ids", list(account_ids), type_=postgresql.ARRAY(ACCOUNT_ID_TYPE))
        wanted = func.unnest(ids).table_valued("value").render_derived(name="wanted")
    else:
        wanted = func.json_each(bindparam("wanted_ids", to_json(list(account_ids)).decode(), type_=Text))
        wanted = wanted.table_valued("value").alias("wanted")
    history = HEALTH_SCORES.alias("history")
    newest = (
        select(history.c.id)
        .where(history.c.account_id == wanted.c.value)
        .order_by(history.c.computed_at.desc(), history.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return select(cast(HEALTH_SCORES.c.payload, Text)).where(HEALTH_SCORES.c.id.in_(select(newest).select_from(wanted)))


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
