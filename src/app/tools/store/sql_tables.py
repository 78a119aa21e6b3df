"""The SQL store's schema: column types, every table, and the pure helpers that build and check their rows."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

from src.app.analysis.signals import DETAIL_FIELDS
from src.app.schemas import CSMHealthScore


def as_utc(value: datetime) -> datetime:
    """`value` in UTC; a naive value counts as UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back as an aware UTC datetime (naive input counts as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC before storing."""
        return None if value is None else as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach or convert to UTC after reading (SQLite returns naive values)."""
        return None if value is None else as_utc(value)


_ID = String(64)

ACCOUNT_ID_TYPE = String(255).with_variant(String(255, collation="C"), "postgresql")
"""On PostgreSQL with the "C" collation, so ids sort by code point as on SQLite, not by the server's locale."""

_KEY = String(512)

_SERIAL = BigInteger().with_variant(Integer(), "sqlite")

METADATA = MetaData()

ACCOUNTS = Table(
    "accounts",
    METADATA,
    Column("account_id", ACCOUNT_ID_TYPE, primary_key=True),
    Column("name", Text, nullable=False),
    Column("status", String(64), nullable=False, index=True),
    Column("record", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("scan_record", Text, nullable=True),
)
"""`scan_record`: the record as JSON text without `DETAIL_FIELDS`, what a whole-book scan reads (NULL in rows
written before the column existed; those are trimmed when read)."""

HEALTH_SCORES = Table(
    "health_scores",
    METADATA,
    Column("id", _SERIAL, primary_key=True, autoincrement=True),
    Column("account_id", ACCOUNT_ID_TYPE, nullable=False),
    Column("score", Float, nullable=False),
    Column("rag", String(8), nullable=False),
    Column("churn_risk_level", String(16), nullable=False),
    Column("churn_triggered_by", String(32)),
    Column("breakdown", JSON, nullable=False),
    Column("computed_at", UTCDateTime, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("scorecard_name", String(128), nullable=True),
    Column("scorecard_version", String(64), nullable=True),
    Index("ix_health_scores_account_latest", "account_id", "computed_at", "id"),
)
"""`scorecard_name`/`scorecard_version`: the scorecard that computed the score (NULL in rows written before the
columns existed: the seed scorer's, i.e. the default scorecard version 1)."""

ADDED_COLUMNS = (ACCOUNTS.c.scan_record, HEALTH_SCORES.c.scorecard_name, HEALTH_SCORES.c.scorecard_version)
"""Columns added after the first release: `create_all` leaves existing tables alone, so these are added by hand."""

ALERTS = Table(
    "alerts",
    METADATA,
    Column("id", _SERIAL, primary_key=True, autoincrement=True),
    Column("account_id", ACCOUNT_ID_TYPE, nullable=False, index=True),
    Column("risk_state", String(64), nullable=False),
    Column("idempotency_key", _KEY, nullable=False, unique=True),
    Column("alerted_at", UTCDateTime, nullable=False),
)

DRAFTS = Table(
    "drafts",
    METADATA,
    Column("draft_id", _ID, primary_key=True),
    Column("idempotency_key", _KEY, nullable=False, unique=True),
    Column("account_id", ACCOUNT_ID_TYPE, index=True),
    Column("kind", String(64), nullable=False),
    Column("to", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("body_html", Text, nullable=False),
    Column("body_text", Text),
    Column("location", Text),
    Column("created_at", UTCDateTime, nullable=False),
)

QBR_PAGES = Table(
    "qbr_pages",
    METADATA,
    Column("id", _ID, primary_key=True),
    Column("idempotency_key", _KEY, nullable=False, unique=True),
    Column("account_id", ACCOUNT_ID_TYPE, nullable=False, index=True),
    Column("period", String(64), nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

OPPORTUNITIES = Table(
    "opportunities",
    METADATA,
    Column("id", _ID, primary_key=True),
    Column("idempotency_key", _KEY, nullable=False, unique=True),
    Column("account_id", ACCOUNT_ID_TYPE, nullable=False, index=True),
    Column("opportunity_type", String(32), nullable=False),
    Column("confidence", String(16), nullable=False),
    Column("estimated_arr_impact", Float, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

ADOPTION_REPORTS = Table(
    "adoption_reports",
    METADATA,
    Column("id", _ID, primary_key=True),
    Column("idempotency_key", _KEY, nullable=False, unique=True),
    Column("account_id", ACCOUNT_ID_TYPE, nullable=False, index=True),
    Column("adoption_rate", Float, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

AUDIT_LOG = Table(
    "audit_log",
    METADATA,
    Column("id", _SERIAL, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("artifact", String(64), nullable=False),
    Column("target", Text, nullable=False),
    Column("account_id", ACCOUNT_ID_TYPE, index=True),
    Column("task_type", String(64)),
    Column("idempotency_key", _KEY, nullable=False, index=True, unique=True),
    Column("detail", JSON, nullable=False),
)

RUNS = Table(
    "runs",
    METADATA,
    Column("run_id", _ID, primary_key=True),
    Column("job_id", String(128), nullable=False, index=True),
    Column("key", _KEY, nullable=False),
    Column("status", String(32), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("lease_until", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("summary", JSON(none_as_null=True)),
    UniqueConstraint("job_id", "key", name="uq_runs_job_key"),
)

RUN_TASKS = Table(
    "run_tasks",
    METADATA,
    Column("run_id", _ID, primary_key=True),
    Column("task_key", _KEY, primary_key=True),
    Column("account_id", ACCOUNT_ID_TYPE),
    Column("status", String(32), nullable=False),
    Column("reason", Text),
    Column("llm_usage", JSON(none_as_null=True)),
    Column("finished_at", UTCDateTime, nullable=False),
)
"""The outcome of each task a run sent to the workers: written once per (run, task), the first outcome wins."""


class JSONText(str):
    """JSON text serialised already, written to a JSON column as it is."""


def check_text(table: Table, row: Mapping[str, Any]) -> None:
    """Refuse the same text on every database, naming the column.

    Too long for its column: SQLite would store it, PostgreSQL fail without naming the column. NUL characters:
    PostgreSQL cannot store them in text.
    """
    for column in table.columns:
        value = row.get(column.name)
        if not isinstance(value, str):
            continue
        limit = getattr(column.type, "length", None)
        if limit is not None and len(value) > limit:
            raise ValueError(f"{table.name}.{column.name} allows {limit} characters, got {len(value)}: {value[:60]!r}")
        if "\x00" in value:
            raise ValueError(f"{table.name}.{column.name} contains a NUL character: {value[:60]!r}")


def account_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Account rows, one per account id (the last record for an id wins)."""
    now = utc_now()
    rows: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.get("account_id") in (None, ""):
            raise ValueError("Every account record needs a non-empty 'account_id'")
        account_id = str(record["account_id"])
        rows[account_id] = {
            "account_id": account_id,
            "name": str(record.get("name") or ""),
            "status": str(record.get("status") or "active"),
            "record": record,
            "updated_at": now,
            "scan_record": to_json({k: v for k, v in record.items() if k not in DETAIL_FIELDS}).decode(),
        }
        check_text(ACCOUNTS, rows[account_id])
    return list(rows.values())


def score_row(score: CSMHealthScore) -> dict[str, Any]:
    """The history row of a score, its JSON columns serialised here in one step each (the payload in UTC)."""
    if score.computed_at.tzinfo is not UTC:
        score = score.model_copy(update={"computed_at": as_utc(score.computed_at)})
    return {
        "account_id": score.account_id,
        "score": score.score,
        "rag": score.rag,
        "churn_risk_level": score.churn_risk_level,
        "churn_triggered_by": score.churn_triggered_by,
        "breakdown": JSONText(to_json(score.signal_breakdown).decode()),
        "computed_at": score.computed_at,
        "payload": JSONText(score.model_dump_json()),
        "scorecard_name": score.scorecard_name,
        "scorecard_version": score.scorecard_version,
    }


def new_id(prefix: str) -> str:
    """A fresh random id such as `qbr_1a2b3c4d5e6f7a8b`."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)
