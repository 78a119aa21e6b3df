"""The embedded `CSMStore`: SQLAlchemy Core tables on SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from pydantic_core import from_json
from sqlalchemy import (
    Table,
    Text,
    cast,
    func,
    insert,
    select,
)
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import Executable

from src.app.analysis.signals import DETAIL_FIELDS
from src.app.schemas import (
    ExpansionOpportunity,
    FeatureAdoptionReport,
    QBRContent,
)
from src.app.tools.store import (
    AuditEntry,
    DraftRecord,
    PageBounds,
    RunClaim,
    SavedArtifact,
)
from src.app.tools.store.sql_engine import (
    add_missing_columns,
    create_store_engine,
    create_tables,
    driver_rows,
    is_memory_sqlite,
    write_accounts,
)
from src.app.tools.store.sql_history import HistoryReads, finished_qbrs_query
from src.app.tools.store.sql_outbox import OutboxRows
from src.app.tools.store.sql_runs import ClaimRules, RunLedgerMethods, RunRecord, claim_run, finish_run
from src.app.tools.store.sql_scores import ScoreRows, history_by_account, history_query
from src.app.tools.store.sql_tables import (
    ACCOUNTS,
    ADOPTION_REPORTS,
    ALERTS,
    AUDIT_LOG,
    DRAFTS,
    METADATA,
    OPPORTUNITIES,
    QBR_PAGES,
    RUNS,
    account_rows,
    check_text,
    is_active,
    new_id,
    record_without,
    utc_now,
)

BATCH_SIZE = 900
"""Rows per executemany batch and ids per IN list (below SQLite's historic 999-parameter limit)."""

_TRIMMING_DIALECTS = frozenset({"sqlite", "postgresql"})
"""Databases that drop omitted record keys in SQL (others drop them after decoding)."""

ContentT = TypeVar("ContentT", bound=BaseModel)


@dataclass(frozen=True)
class ArtifactRow(Generic[ContentT]):
    """A stored QBR, opportunity or adoption report with its id, idempotency key and creation time."""

    artifact_id: str
    idempotency_key: str
    account_id: str
    created_at: datetime
    content: ContentT


class SQLStore(ScoreRows, HistoryReads, OutboxRows, RunLedgerMethods):
    """`CSMStore` on SQLAlchemy Core; construction does no I/O, the engine and tables are made on first use.

    Every blocking call runs in a worker thread (`asyncio.to_thread`), so the event loop is never blocked.
    """

    def __init__(self, url: str) -> None:
        self._url: URL = make_url(url)
        self._engine: Engine | None = None
        self._init_lock = threading.Lock()
        self._sqlite_lock = threading.Lock()

    async def aclose(self) -> None:
        """Dispose of the engine and its pooled connections (a later call opens a new engine)."""
        engine, self._engine = self._engine, None
        if engine is not None:
            await asyncio.to_thread(engine.dispose)

    async def upsert_accounts(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Insert or replace raw account records keyed by `account_id`; returns how many distinct ones."""
        return await asyncio.to_thread(self._upsert_accounts, records)

    async def load_accounts(
        self, account_ids: Sequence[str] | None = None, *, active_only: bool = True
    ) -> list[dict[str, Any]]:
        """Raw account records (the stored JSON), all or the given ids, ordered by account id."""
        return await asyncio.to_thread(self._load_accounts, account_ids, active_only)

    async def iter_accounts(
        self, *, active_only: bool = True, page_size: int = 5000, omit: Sequence[str] = ()
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Raw account records in pages of at most `page_size`, by account id; one short read per page.

        Args:
            active_only: Only accounts whose status is "active".
            page_size: Most records per page.
            omit: Top-level keys left out of every record by the database, so they are never read into Python
                (a whole-book scan skips tickets, usage history and the like).
        """
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        if isinstance(omit, str):
            raise TypeError(f"omit must be a sequence of keys, not the string {omit!r}")
        after: str | None = None
        while True:
            page = await asyncio.to_thread(self._account_page, after, active_only, page_size, tuple(omit))
            if page:
                yield [record for _, record in page]
            if len(page) < page_size:
                return
            after = page[-1][0]

    def process_url(self) -> str | None:
        """This database's URL, password included, for helper processes; None for an in-memory SQLite."""
        return None if is_memory_sqlite(self._url) else self._url.render_as_string(hide_password=False)

    async def page_bounds(self, *, page_size: int, active_only: bool = True) -> list[PageBounds]:
        """(after, upto) id bounds that split the accounts into pages of `page_size`, in id order (one query).

        The last page is open-ended (accounts added after the split with higher ids fall in it) and never empty:
        a book of exactly k pages has k bounds, an empty book one.
        """
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        ends = await asyncio.to_thread(self._page_ends, page_size, active_only)
        starts: list[str | None] = [None, *ends]
        return list(zip(starts, [*ends, None], strict=True))

    async def accounts_in_range(
        self, after: str | None, upto: str | None, *, active_only: bool = True, omit: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """Raw account records with ids after `after` and up to `upto` (None: unbounded), by id, without `omit`."""
        if isinstance(omit, str):
            raise TypeError(f"omit must be a sequence of keys, not the string {omit!r}")
        page = await asyncio.to_thread(self._account_page, after, active_only, None, tuple(omit), upto)
        return [record for _, record in page]

    async def score_points(
        self, account_ids: Sequence[str], *, since: datetime
    ) -> dict[str, list[tuple[datetime, float, tuple[str, str]]]]:
        """Per account, its scores computed at or after `since`, oldest first, with the scorecard of each."""
        return await asyncio.to_thread(self._score_points, account_ids, since)

    async def record_alert(self, account_id: str, risk_state: str, *, idempotency_key: str, at: datetime) -> bool:
        """Record a churn alert; False when this key was already recorded."""
        row = {"account_id": account_id, "risk_state": risk_state, "idempotency_key": idempotency_key}
        saved = await asyncio.to_thread(self._insert_once, ALERTS, {**row, "alerted_at": at})
        return saved.created

    async def save_qbr(self, qbr: QBRContent, *, idempotency_key: str) -> SavedArtifact:
        """Store a QBR page."""
        row = {"account_id": qbr.account_id, "period": qbr.period, "trigger": qbr.trigger}
        return await self._save_artifact(QBR_PAGES, "qbr", qbr, idempotency_key, row)

    async def save_opportunity(self, opportunity: ExpansionOpportunity, *, idempotency_key: str) -> SavedArtifact:
        """Store an expansion opportunity record."""
        row = {
            "account_id": opportunity.account_id,
            "opportunity_type": opportunity.opportunity_type,
            "confidence": opportunity.confidence,
            "estimated_arr_impact": opportunity.estimated_arr_impact,
        }
        return await self._save_artifact(OPPORTUNITIES, "opp", opportunity, idempotency_key, row)

    async def save_adoption_report(self, report: FeatureAdoptionReport, *, idempotency_key: str) -> SavedArtifact:
        """Store a feature adoption report."""
        row = {"account_id": report.account_id, "adoption_rate": report.adoption_rate}
        return await self._save_artifact(ADOPTION_REPORTS, "adopt", report, idempotency_key, row)

    async def list_qbrs(self, limit: int = 100) -> list[ArtifactRow[QBRContent]]:
        """Stored QBRs, newest first."""
        return await asyncio.to_thread(self._list_artifacts, QBR_PAGES, QBRContent, limit)

    async def list_opportunities(self, limit: int = 100) -> list[ArtifactRow[ExpansionOpportunity]]:
        """Stored expansion opportunities, newest first."""
        return await asyncio.to_thread(self._list_artifacts, OPPORTUNITIES, ExpansionOpportunity, limit)

    async def list_adoption_reports(self, limit: int = 100) -> list[ArtifactRow[FeatureAdoptionReport]]:
        """Stored feature adoption reports, newest first."""
        return await asyncio.to_thread(self._list_artifacts, ADOPTION_REPORTS, FeatureAdoptionReport, limit)

    async def save_draft(self, draft: DraftRecord) -> SavedArtifact:
        """Keep a draft in the review queue (idempotent by `draft.idempotency_key`)."""
        return await asyncio.to_thread(self._insert_once, DRAFTS, draft.model_dump())

    async def list_drafts(self, *, limit: int = 100) -> list[DraftRecord]:
        """Drafts awaiting review, newest first."""
        query = select(DRAFTS).order_by(DRAFTS.c.created_at.desc(), DRAFTS.c.draft_id.desc()).limit(limit)
        rows = await asyncio.to_thread(self._fetch_mappings, query)
        return [DraftRecord.model_validate(row) for row in rows]

    async def record_audit(self, entry: AuditEntry) -> None:
        """Add one outbound artifact to the audit log, once per idempotency key (stamped now when `at` is unset)."""
        row = {**entry.model_dump(), "at": entry.at or utc_now()}
        await asyncio.to_thread(self._insert_once, AUDIT_LOG, row)

    async def list_audit(
        self, *, limit: int = 100, account_id: str | None = None, artifact: str | None = None
    ) -> list[AuditEntry]:
        """Audit entries, newest first; optionally one account's or one kind's (`draft` also matches `draft:qbr`)."""
        query = select(AUDIT_LOG).order_by(AUDIT_LOG.c.at.desc(), AUDIT_LOG.c.id.desc()).limit(limit)
        if account_id is not None:
            query = query.where(AUDIT_LOG.c.account_id == account_id)
        if artifact is not None:
            kind = AUDIT_LOG.c.artifact
            query = query.where((kind == artifact) | kind.startswith(f"{artifact}:", autoescape=True))
        rows = await asyncio.to_thread(self._fetch_mappings, query)
        return [AuditEntry.model_validate(row) for row in rows]

    async def claim_run(
        self,
        job_id: str,
        key: str,
        *,
        owner: str,
        lease_until: datetime,
        now: datetime,
        force: bool = False,
        take_over: bool = False,
    ) -> RunClaim:
        """Claim one job occurrence (unique per job and key) for `owner` until `lease_until`.

        A new occurrence is inserted; an existing one is taken over only when it failed, when its holder's
        lease expired (the holder died: the run resumes) or `take_over` is set, or when it succeeded and `force` is set.
        """
        rules = ClaimRules(force=force, take_over=take_over)
        return await asyncio.to_thread(claim_run, self._transaction, job_id, key, owner, lease_until, now, rules)

    async def accounts_with_qbr(self, period: str, trigger: str | None = None) -> set[str]:
        """Ids of accounts that already have a finished QBR for `period` (and `trigger`): see `finished_qbrs_query`."""
        query = finished_qbrs_query(period, trigger)
        return {str(row["account_id"]) for row in await asyncio.to_thread(self._fetch_mappings, query)}

    async def finish_run(self, run_id: str, status: str, summary: Mapping[str, Any] | None = None) -> None:
        """Record how a run ended; raises KeyError for an unknown run id."""
        await asyncio.to_thread(finish_run, self._transaction, run_id, status, summary)

    async def list_runs(self, limit: int = 100) -> list[RunRecord]:
        """Job runs, newest first."""
        query = select(RUNS).order_by(RUNS.c.started_at.desc(), RUNS.c.run_id.desc()).limit(limit)
        rows = await asyncio.to_thread(self._fetch_mappings, query)
        return [RunRecord.model_validate(row) for row in rows]

    async def count(self, table_name: str) -> int:
        """Number of rows in one of the store's tables."""
        table = METADATA.tables.get(table_name)
        if table is None:
            raise ValueError(f"Unknown table {table_name!r}; known: {', '.join(sorted(METADATA.tables))}")
        query = select(func.count().label("n")).select_from(table)
        rows = await asyncio.to_thread(self._fetch_mappings, query)
        return int(rows[0]["n"])

    async def count_accounts(self, *, active_only: bool = True) -> int:
        """How many accounts (active ones by default) a whole-book scan covers: one COUNT, no record read."""
        query = select(func.count().label("n")).select_from(ACCOUNTS)
        if active_only:
            query = query.where(is_active())
        rows = await asyncio.to_thread(self._fetch_mappings, query)
        return int(rows[0]["n"])

    def _ready_engine(self) -> Engine:
        with self._init_lock:
            if self._engine is None:
                engine = create_store_engine(self._url)
                create_tables(engine)
                add_missing_columns(engine)
                self._engine = engine
            return self._engine

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Connection]:
        engine = self._ready_engine()
        with self._serialise(write=write), engine.begin() as connection:
            yield connection

    def _serialise(self, *, write: bool) -> AbstractContextManager[object]:
        """SQLite has one writer, and an in-memory database shares one connection: serialise in-process."""
        if is_memory_sqlite(self._url) or (write and self._url.get_backend_name() == "sqlite"):
            return self._sqlite_lock
        return nullcontext()

    def _fetch_mappings(self, query: Executable) -> list[dict[str, Any]]:
        with self._transaction(write=False) as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def _insert_once(self, table: Table, row: Mapping[str, Any]) -> SavedArtifact:
        """Insert `row` unless its idempotency key exists; under a race the UNIQUE constraint decides."""
        check_text(table, row)
        key = row["idempotency_key"]
        try:
            with self._transaction(write=True) as connection:
                existing = _id_for_key(connection, table, key)
                if existing is not None:
                    return SavedArtifact(artifact_id=existing, created=False)
                primary_key = connection.execute(insert(table), dict(row)).inserted_primary_key
                assert primary_key is not None  # a single-row INSERT always reports its key
                return SavedArtifact(artifact_id=str(primary_key[0]), created=True)
        except IntegrityError:
            with self._transaction(write=False) as connection:
                existing = _id_for_key(connection, table, key)
            if existing is None:
                raise
            return SavedArtifact(artifact_id=existing, created=False)

    async def _save_artifact(
        self, table: Table, prefix: str, content: BaseModel, idempotency_key: str, columns: Mapping[str, Any]
    ) -> SavedArtifact:
        row = {
            **columns,
            "id": new_id(prefix),
            "idempotency_key": idempotency_key,
            "payload": content.model_dump(mode="json"),
            "created_at": utc_now(),
        }
        return await asyncio.to_thread(self._insert_once, table, row)

    def _list_artifacts(self, table: Table, model: type[ContentT], limit: int) -> list[ArtifactRow[ContentT]]:
        query = select(table).order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit)
        return [
            ArtifactRow(
                artifact_id=row["id"],
                idempotency_key=row["idempotency_key"],
                account_id=row["account_id"],
                created_at=row["created_at"],
                content=model.model_validate(row["payload"]),
            )
            for row in self._fetch_mappings(query)
        ]

    def _upsert_accounts(self, records: Sequence[Mapping[str, Any]]) -> int:
        rows = account_rows(records)
        with self._transaction(write=True) as connection:
            for batch in _batches(rows):
                write_accounts(connection, batch)
        return len(rows)

    def _load_accounts(self, account_ids: Sequence[str] | None, active_only: bool) -> list[dict[str, Any]]:
        query = select(ACCOUNTS.c.account_id, ACCOUNTS.c.record)
        if active_only:
            query = query.where(ACCOUNTS.c.status == "active")
        with self._transaction(write=False) as connection:
            if account_ids is None:
                rows = list(connection.execute(query))
            else:
                rows = [
                    row
                    for batch in _id_batches(account_ids)
                    for row in connection.execute(query.where(ACCOUNTS.c.account_id.in_(batch)))
                ]
        # Sorted here, not by ORDER BY, so the order is code-point order on every database collation.
        return [row.record for row in sorted(rows, key=lambda row: row.account_id)]

    def _account_page(
        self, after: str | None, active_only: bool, limit: int | None, omit: tuple[str, ...], upto: str | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """Keyset pagination: the next `limit` accounts after id `after` (and up to `upto`), in id order."""
        dialect = self._url.get_backend_name()
        trimmed = omit and dialect in _TRIMMING_DIALECTS
        record = record_without(omit, dialect) if trimmed else cast(ACCOUNTS.c.record, Text)
        if set(omit) == set(DETAIL_FIELDS):
            record = func.coalesce(ACCOUNTS.c.scan_record, record)
        query = select(ACCOUNTS.c.account_id, record).order_by(ACCOUNTS.c.account_id).limit(limit)
        if active_only:
            query = query.where(is_active())
        if after is not None:
            query = query.where(ACCOUNTS.c.account_id > after)
        if upto is not None:
            query = query.where(ACCOUNTS.c.account_id <= upto)
        with self._transaction(write=False) as connection:
            page = [(account_id, from_json(text)) for account_id, text in driver_rows(connection, query)]
        for _, loaded in page if omit else ():  # what the database could not trim
            for key in omit:
                loaded.pop(key, None)
        return page

    def _page_ends(self, page_size: int, active_only: bool) -> list[str]:
        """The id ending each full page but the last account's: the last page stays open-ended, never empty."""
        position = func.row_number().over(order_by=ACCOUNTS.c.account_id).label("position")
        numbered = select(ACCOUNTS.c.account_id, position, func.count().over().label("total"))
        if active_only:
            numbered = numbered.where(is_active())
        ranked = numbered.subquery()
        ends = (ranked.c.position % page_size == 0) & (ranked.c.position < ranked.c.total)
        query = select(ranked.c.account_id).where(ends).order_by(ranked.c.account_id)
        with self._transaction(write=False) as connection:
            return [str(account_id) for account_id in connection.execute(query).scalars()]

    def _score_points(
        self, account_ids: Sequence[str], since: datetime
    ) -> dict[str, list[tuple[datetime, float, tuple[str, str]]]]:
        with self._transaction(write=False) as connection:
            rows = [
                row for batch in _id_batches(account_ids) for row in connection.execute(history_query(batch, since))
            ]
        return history_by_account(rows)


def _id_for_key(connection: Connection, table: Table, idempotency_key: str) -> str | None:
    primary_key = next(iter(table.primary_key.columns))
    found = connection.execute(select(primary_key).where(table.c.idempotency_key == idempotency_key)).scalar()
    return None if found is None else str(found)


def _id_batches(account_ids: Sequence[str], *, size: int = BATCH_SIZE) -> Iterator[list[str]]:
    """Distinct ids in batches of `size`; a bare string is refused (it is a `Sequence[str]` too)."""
    if isinstance(account_ids, str):
        raise TypeError(f"account_ids must be a sequence of ids, not the string {account_ids!r}")
    return _batches(sorted(set(account_ids)), size=size)


def _batches(items: Sequence[Any], *, size: int = BATCH_SIZE) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
