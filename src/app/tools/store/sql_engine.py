"""Engine and dialect plumbing for the SQL store: engine setup, schema upgrades and per-dialect bulk writes."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic_core import from_json, to_json
from sqlalchemy import Table, create_engine, delete, event, insert, inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import Insert
from tenacity import retry, retry_if_exception, stop_after_delay, wait_random

from src.app.tools.store.sql_tables import ACCOUNT_FIELD_COLUMNS, ACCOUNTS, ADDED_COLUMNS, METADATA, JSONText

WAL_CHECKPOINT_PAGES = 10_000
"""SQLite copies its write-ahead log into the database once it holds this many pages (~40 MB; SQLite's default
is 1,000): a whole-book scan writes ~1 KB per account, and fewer, larger checkpoints cost less in all."""
SQLITE_PAGE_BYTES = 8192
"""The page size of a new SQLite file (SQLite's default is 4,096): an account row (~2.4 KB: the record and its
scan copy) leaves most of a 4 KB page unused, so a 100,000-account book took 388 MB, and 280 MB with 8 KB pages.
A file that exists keeps the page size it was made with (changing it would take a VACUUM)."""


def create_store_engine(url: URL) -> Engine:
    """The engine for `url`: pydantic JSON columns; SQLite gets WAL pragmas, and in-memory one shared connection."""
    json_options: dict[str, Any] = {"json_serializer": _to_json_text, "json_deserializer": from_json}
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **json_options)
    options: dict[str, Any] = {**json_options, "connect_args": {"check_same_thread": False}}
    if is_memory_sqlite(url):
        options["poolclass"] = StaticPool
    elif url.database:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **options)
    event.listen(engine, "connect", _configure_sqlite_connection)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, _connection_record: Any) -> None:
    """Per connection: enforce foreign keys; 8 KB pages for a new file; WAL so readers never wait on the writer."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_BYTES}")  # before WAL: a WAL file's page size is fixed
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    finally:
        cursor.close()


@retry(
    retry=retry_if_exception(lambda error: "locked" in str(error)),
    wait=wait_random(0.01, 0.1),
    stop=stop_after_delay(10),
    reraise=True,
)
def _switch_to_wal(cursor: Any) -> None:
    """Switch to WAL, retried while another process writes the fresh file.

    SQLite answers that race with an immediate "database is locked", without its busy timeout, to avoid a deadlock.
    """
    cursor.execute("PRAGMA journal_mode=WAL")


def _to_json_text(value: Any) -> str:
    """Serialise JSON columns with pydantic (fast; dates become ISO strings, NaN becomes null)."""
    return value if isinstance(value, JSONText) else to_json(value).decode()


def is_memory_sqlite(url: URL) -> bool:
    """Whether `url` names an in-memory SQLite database."""
    if url.get_backend_name() != "sqlite":
        return False
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def add_missing_columns(engine: Engine) -> None:
    """Add the `ADDED_COLUMNS` a database created by an earlier version lacks (all nullable, so no backfill)."""
    with engine.begin() as connection:
        for column in ADDED_COLUMNS:
            present = {c["name"] for c in inspect(connection).get_columns(column.table.name)}
            if column.name not in present:
                kind = column.type.compile(dialect=connection.dialect)
                connection.exec_driver_sql(f'ALTER TABLE {column.table.name} ADD COLUMN "{column.name}" {kind}')
                if column.table is ACCOUNTS and column.name in ACCOUNT_FIELD_COLUMNS:
                    _backfill_account_column(connection, column.name, ACCOUNT_FIELD_COLUMNS[column.name])
        for table in {column.table for column in ADDED_COLUMNS}:
            for index in table.indexes:  # indexes on added columns, and ones added to existing tables
                index.create(connection, checkfirst=True)


def _backfill_account_column(connection: Connection, column: str, key: str) -> None:
    """Fill a newly added account column from each stored record (once, when the column is added)."""
    if connection.dialect.name == "sqlite":
        value = f"json_extract(record, '$.{key}')"
    elif connection.dialect.name == "postgresql":
        value = f"(record::jsonb ->> '{key}')"
    else:
        return
    if column == "arr":
        value = (
            f"CAST({value} AS REAL)" if connection.dialect.name == "sqlite" else f"CAST({value} AS DOUBLE PRECISION)"
        )
    elif column == "renewal_date":
        value = f"substr({value}, 1, 10)"
    connection.exec_driver_sql(f'UPDATE accounts SET "{column}" = {value}')


def write_accounts(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Upsert one batch: native ON CONFLICT where the dialect has it, else delete-then-insert."""
    statement: sqlite.Insert | postgresql.Insert
    if connection.dialect.name == "sqlite":
        statement = sqlite.insert(ACCOUNTS)
    elif connection.dialect.name == "postgresql":
        statement = postgresql.insert(ACCOUNTS)
    else:
        ids = [row["account_id"] for row in rows]
        connection.execute(delete(ACCOUNTS).where(ACCOUNTS.c.account_id.in_(ids)))
        connection.execute(insert(ACCOUNTS), rows)
        return
    columns = ("name", "status", "record", "updated_at", "scan_record", *ACCOUNT_FIELD_COLUMNS)
    replaced = {name: statement.excluded[name] for name in columns}
    upserting = statement.on_conflict_do_update(index_elements=["account_id"], set_=replaced)
    if connection.dialect.name == "sqlite":
        insert_bound_rows(connection, ACCOUNTS, rows, upserting)
    else:
        connection.execute(upserting, rows)


def insert_bound_rows(
    connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]], statement: Insert | None = None
) -> None:
    """One driver executemany of `statement`, a plain insert unless given, each value bound by its column's type.

    SQLAlchemy's own executemany prepares every row generically, which costs twice what SQLite's insert does.
    """
    insert_bound_columns(connection, table, {key: [row[key] for row in rows] for key in rows[0]}, statement)


def insert_bound_columns(
    connection: Connection, table: Table, columns: Mapping[str, Sequence[Any]], statement: Insert | None = None
) -> None:
    """`insert_bound_rows` of rows given as columns of equal length (column name -> values)."""
    keys = list(columns)
    compiled = (statement if statement is not None else insert(table)).compile(
        dialect=connection.dialect, column_keys=keys
    )
    order = compiled.positiontup or keys
    dialect = connection.dialect
    bound = []
    for key in order:
        bind = table.c[key].type.dialect_impl(dialect).bind_processor(dialect)
        values = columns[key]
        bound.append(_plain(values if bind is None else _bind_each(bind, values)))
    connection.exec_driver_sql(compiled.string, list(zip(*bound, strict=True)))


def driver_rows(connection: Connection, query: Select[Any]) -> list[tuple[Any, ...]]:
    """A SELECT's rows as the driver's own tuples, with no result processing (a scan reads thousands a page).

    Only for queries whose parameters and columns need no type processing: text, numbers, JSON as text.
    """
    compiled = query.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    arguments = tuple(params[name] for name in compiled.positiontup or ()) if compiled.positional else params
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(compiled.string, arguments)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _plain(values: Sequence[Any]) -> Sequence[Any]:
    """Bound values as the driver takes them fastest: JSON text serialised already (`JSONText`) as a plain `str`.

    sqlite3 binds a subclass of `str` through its adapter lookup, which costs twice what a `str` does.
    """
    if not values or type(values[0]) is not JSONText:
        return values
    return [str.__str__(value) if type(value) is JSONText else value for value in values]


def _bind_each(bind: Callable[[Any], Any], values: Sequence[Any]) -> list[Any]:
    """Each value through its column's bind processor, once per distinct timestamp (a scan stamps every row alike)."""
    if not isinstance(values[0], datetime):
        return list(map(bind, values))
    bound: dict[Any, Any] = {}
    return [bound[value] if value in bound else bound.setdefault(value, bind(value)) for value in values]


def create_tables(engine: Engine, *, attempts: int = 5) -> None:
    """`create_all`, tolerating another process creating the same tables at the same moment (first run).

    `create_all` checks, then creates: two processes starting on a fresh database can both see a table missing
    and one of them then fails with "already exists". That process retries; the second check finds the tables.
    """
    for attempt in range(1, attempts + 1):
        try:
            METADATA.create_all(engine)
            return
        except (OperationalError, ProgrammingError, IntegrityError) as error:
            raced = "already exists" in str(error) or "duplicate" in str(error).lower()
            if not raced or attempt == attempts:
                raise
            time.sleep(0.05 * attempt)
