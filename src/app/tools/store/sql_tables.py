"""The SQL store's schema: column types, every table, and the pure helpers that build and check their rows."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
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
    bindparam,
    case,
    cast,
    func,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import ColumnElement

from src.app.analysis.signals import DETAIL_FIELDS

_DETAIL_KEYS = set(DETAIL_FIELDS)
"""The keys a scan's copy of a record (`scan_record`) leaves out."""
_ACCOUNT_TEXT = ("account_id", "name", "status")
"""The text of an account row `check_text` looks at: `account_rows` cuts the others to size or writes them as JSON."""


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
    Column("updated_at", UTCDateTime, nullable=False, index=True),
    Column("scan_record", Text, nullable=True),
    Column("rep_email", String(320), nullable=True, index=True),
    Column("arr", Float, nullable=True),
    Column("segment", String(64), nullable=True),
    Column("renewal_date", String(32), nullable=True, index=True),
)
"""`scan_record`: the record as JSON text without `DETAIL_FIELDS`, what a whole-book scan reads (NULL in rows
written before the column existed; those are trimmed when read). `rep_email`, `arr`, `segment` and
`renewal_date` copy the record's fields so the review desk filters and sorts a large book by index."""

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
columns existed: the seed scorer's, i.e. the default scorecard version 1). `payload`: the score's fields without a
column of their own (`sql_score_rows.PAYLOAD_FIELDS`; rows written before 2026-12 hold the whole score)."""

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
    Column("status", String(16), index=True),
    Column("reason", Text),
    Column("reviewed_by", String(320)),
    Column("reviewed_at", UTCDateTime),
)
"""`status` is the review status (NULL in rows written before it existed: pending); `location` is NULL while a
held draft waits for approval (`CSM_DRAFT_REVIEW=hold`)."""

ACCOUNT_FIELD_COLUMNS = {
    "rep_email": "rep_email",
    "arr": "arr",
    "segment": "segment",
    "renewal_date": "contract_end_date",
}
"""Account columns copied from the record (column -> record key), backfilled from the record when added."""

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

USERS = Table(
    "users",
    METADATA,
    Column("email", String(320), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
"""People who may sign in to the review desk (`csm users add`): a lead sees the whole book, a rep their accounts."""

FEEDBACK = Table(
    "feedback",
    METADATA,
    Column("id", _SERIAL, primary_key=True, autoincrement=True),
    Column("account_id", ACCOUNT_ID_TYPE, nullable=False, index=True),
    Column("draft_id", _ID, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("label", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("risk_state", String(64)),
    Column("by", String(320), nullable=False),
    Column("at", UTCDateTime, nullable=False),
)
"""What people said about the agent's output: a churn alert rejected as a false alarm is a label for backtests."""

ACCOUNT_HEALTH = Table(
    "account_health",
    METADATA,
    Column("account_id", ACCOUNT_ID_TYPE, primary_key=True),
    Column("score", Float, nullable=False, index=True),
    Column("rag", String(8), nullable=False, index=True),
    Column("previous_score", Float),
    Column("delta", Float, index=True),
    Column("churn_risk_level", String(16), nullable=False),
    Column("top_signals", JSON, nullable=False),
    Column("computed_at", UTCDateTime, nullable=False),
    Column("name", Text),
    Column("status", String(64)),
    Column("rep_email", String(320), index=True),
    Column("arr", Float),
    Column("segment", String(64)),
    Column("renewal_date", String(32), index=True),
)
"""Each account's newest score with a copy of its name, status, owner, ARR, segment and renewal, kept by the score
writes and the desk (`sql_book_rows`; one small row per account, so the book page reads one indexed table)."""

DESK_MARKS = Table(
    "desk_marks",
    METADATA,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
"""How far the desk has read: e.g. the newest account update copied into `account_health`."""

BOOK_DAYS = Table(
    "book_days",
    METADATA,
    Column("day", String(10), primary_key=True),
    Column("counts", JSON, nullable=False),
    Column("last_score_id", BigInteger, nullable=False),
)
"""The book's RAG counts at the end of each day with scores; `last_score_id` is how far the history was read."""

OUTBOX = Table(
    "outbox",
    METADATA,
    Column("id", _SERIAL, primary_key=True, autoincrement=True),
    Column("idempotency_key", _KEY, nullable=False, unique=True),
    Column("channel", String(32), nullable=False),
    Column("artifact", String(64), nullable=False),
    Column("account_id", ACCOUNT_ID_TYPE, index=True),
    Column("task_type", String(64)),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("result", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
)
"""Pending remote writes (events, chat messages, mail drafts): a row is written before the remote write and
marked `done` only after it succeeded; `pending` rows are retried by the next run. A new table: `create_all`
adds it to a database made by an earlier version."""

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
    Column("totals", JSON(none_as_null=True)),
    Column("detail", JSON(none_as_null=True)),
)
"""The outcome of each task a run sent to the workers: written once per (run, task), the first outcome wins.
`totals` are counts the run's summary adds up (accounts scored, alerts); `detail` is what a later task of the
run reads back (a scan page's alert candidates)."""

RUN_LLM_CALLS = Table(
    "run_llm_calls",
    METADATA,
    Column("run_id", _ID, primary_key=True),
    Column("call_id", _ID, primary_key=True),
    Column("task_key", _KEY, nullable=False),
    Column("model", String(255), nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)
"""One row per LLM reply a worker's task received, written as it arrives (before the graph checkpoints it), so a
run's usage includes the calls of a task whose worker died before recording the task's outcome. A new table:
`create_all` adds it to a database made by an earlier version."""

ADDED_COLUMNS = (
    ACCOUNTS.c.scan_record,
    ACCOUNTS.c.rep_email,
    ACCOUNTS.c.arr,
    ACCOUNTS.c.segment,
    ACCOUNTS.c.renewal_date,
    DRAFTS.c.status,
    DRAFTS.c.reason,
    DRAFTS.c.reviewed_by,
    DRAFTS.c.reviewed_at,
    HEALTH_SCORES.c.scorecard_name,
    HEALTH_SCORES.c.scorecard_version,
    RUN_TASKS.c.totals,
    RUN_TASKS.c.detail,
)
"""Columns added after the first release: `create_all` leaves existing tables alone, so these are added by hand."""


class JSONText(str):
    """JSON text serialised already, written to a JSON column as it is."""


class SerialisedRecord(dict[str, Any]):
    """An account record carrying its JSON text (`to_json(record)`): `account_rows` writes that, not a new one."""

    __slots__ = ("json",)

    def __init__(self, record: Mapping[str, Any], json: str) -> None:
        super().__init__(record)
        self.json = json


def check_text(table: Table, row: Mapping[str, Any], *, only: tuple[str, ...] = ()) -> None:
    """Refuse the same text on every database, naming the column (`only`: just these columns, else all).

    Too long for its column: SQLite would store it, PostgreSQL fail without naming the column. NUL characters:
    PostgreSQL cannot store them in text.
    """
    for name, limit in _text_limits(table, only):
        value = row.get(name)
        if not isinstance(value, str):
            continue
        if limit is not None and len(value) > limit:
            raise ValueError(f"{table.name}.{name} allows {limit} characters, got {len(value)}: {value[:60]!r}")
        if "\x00" in value:
            raise ValueError(f"{table.name}.{name} contains a NUL character: {value[:60]!r}")


@cache
def _text_limits(table: Table, only: tuple[str, ...]) -> tuple[tuple[str, int | None], ...]:
    """(column, length limit or None) for the columns of `table` (those in `only`, if given), looked up once."""
    columns = [column for column in table.columns if not only or column.name in only]
    return tuple((column.name, getattr(column.type, "length", None)) for column in columns)


def account_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Account rows, one per account id (the last record for an id wins)."""
    now = utc_now()
    rows: dict[str, dict[str, Any]] = {}
    for record in records:
        text = checked_account_text(record)
        rows[text["account_id"]] = {
            **text,
            "record": JSONText(record.json) if isinstance(record, SerialisedRecord) else record,
            "updated_at": now,
            "scan_record": to_json(record, exclude=_DETAIL_KEYS).decode(),
            **account_field_values(record),
        }
    return list(rows.values())


def checked_account_text(record: Mapping[str, Any]) -> dict[str, str]:
    """The account row's id, name and status for `record`, or ValueError when the store cannot keep them.

    What `account_rows` refuses, so a caller can find a record the store would refuse before writing anything.
    """
    if record.get("account_id") in (None, ""):
        raise ValueError("Every account record needs a non-empty 'account_id'")
    text = {
        "account_id": str(record["account_id"]),
        "name": str(record.get("name") or ""),
        "status": str(record.get("status") or "active"),
    }
    check_text(ACCOUNTS, text, only=_ACCOUNT_TEXT)
    return text


def account_field_values(record: Mapping[str, Any]) -> dict[str, Any]:
    """The desk's copies of an account record's owner, ARR, segment and renewal date (None when absent or bad)."""
    arr = record.get("arr")
    try:
        arr_value = None if arr is None or isinstance(arr, bool) else float(arr)
    except (TypeError, ValueError):
        arr_value = None
    renewal = record.get("contract_end_date")
    return {
        "rep_email": _short_text(record.get("rep_email"), 320),
        "arr": arr_value,
        "segment": _short_text(record.get("segment"), 64),
        "renewal_date": _short_text(str(renewal)[:10] if renewal else None, 32),
    }


def _short_text(value: Any, limit: int) -> str | None:
    if value is None or value == "":
        return None
    text = str(value).replace("\x00", "")
    return text[:limit]


def id_table(account_ids: Sequence[str], dialect: str) -> FromClause:
    """The ids as a one-column table (`value`) from a single parameter: a JSON array (SQLite) or an array.

    One parameter however many ids: no statement with thousands of bound values to compile and bind.
    """
    if dialect == "postgresql":
        ids = bindparam("wanted_ids", list(account_ids), type_=postgresql.ARRAY(ACCOUNT_ID_TYPE))
        return func.unnest(ids).table_valued("value").render_derived(name="wanted")
    listed = func.json_each(bindparam("wanted_ids", to_json(list(account_ids)).decode(), type_=Text))
    return listed.table_valued("value").alias("wanted")


def new_id(prefix: str) -> str:
    """A fresh random id such as `qbr_1a2b3c4d5e6f7a8b`."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


def is_active() -> ColumnElement[bool]:
    """The active accounts' condition.

    Compared as an expression, so SQLite walks the primary key in id order rather than fetching every active
    account through the status index and sorting them all again for each page.
    """
    return func.coalesce(ACCOUNTS.c.status, "") == "active"


def record_without(keys: tuple[str, ...], dialect: str) -> ColumnElement[str]:
    """The account record as JSON text without the given top-level keys, removed by the database.

    SQLite's JSON functions refuse what its JSON text may hold but JSON does not (NaN, Infinity): such a record
    is returned whole.
    """
    if dialect == "sqlite":
        removed = func.json_remove(ACCOUNTS.c.record, *(f'$."{key}"' for key in keys), type_=Text)
        return case((func.json_valid(ACCOUNTS.c.record) == 1, removed), else_=cast(ACCOUNTS.c.record, Text))
    subtracted = cast(ACCOUNTS.c.record, postgresql.JSONB).op("-")(postgresql.array(keys, type_=Text))
    return cast(subtracted, Text)
