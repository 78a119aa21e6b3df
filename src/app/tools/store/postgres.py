"""PostgreSQL connections for the checkpointer: libpq connection strings and the pooled `AsyncPostgresSaver`.

Imported only when the store's URL is PostgreSQL, so commands on the embedded SQLite store never load psycopg.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from typing import Any

import psycopg
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from psycopg.conninfo import make_conninfo
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url

from src.app.tools.store import CheckpointerError

POSTGRES_POOL_SIZE = 4
CONNECT_TIMEOUT_S = 10


def libpq_conninfo(sqlalchemy_url: str) -> str:
    """The libpq connection string (`host=... dbname=...`) of a SQLAlchemy PostgreSQL URL, query options included.

    Key/value form rather than a URI: values are quoted by psycopg, so passwords and `options` with spaces or
    URL-special characters reach the server exactly as SQLAlchemy would pass them.
    """
    url = make_url(sqlalchemy_url)
    parts = {"host": url.host, "port": url.port, "dbname": url.database, "user": url.username}
    parts |= {"password": url.password, **{key: _last(value) for key, value in url.query.items()}}
    return make_conninfo("", **{key: value for key, value in parts.items() if value is not None})


async def open_postgres_checkpointer(stack: AsyncExitStack, url: str, serde: JsonPlusSerializer) -> AsyncPostgresSaver:
    """The checkpointer on `url`: tables made over one direct connection (clear errors), runs served from a pool."""
    conninfo = libpq_conninfo(url)
    options: dict[str, Any] = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    try:
        async with await psycopg.AsyncConnection.connect(
            conninfo, connect_timeout=CONNECT_TIMEOUT_S, **options
        ) as connection:
            await _setup_once(connection)
    except psycopg.Error as error:
        where = make_url(url).render_as_string(hide_password=True)
        raise CheckpointerError(f"Cannot open the PostgreSQL checkpointer at {where}: {error}") from error
    pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]] = AsyncConnectionPool(
        conninfo,
        min_size=1,
        max_size=POSTGRES_POOL_SIZE,
        kwargs=options,
        open=False,
        check=AsyncConnectionPool.check_connection,
    )
    await stack.enter_async_context(pool)
    return AsyncPostgresSaver(pool, serde=serde)


SETUP_LOCK_KEY = "hashtext('csm checkpointer setup ' || current_schema())"
SETUP_WAIT_S = 60.0


async def _setup_once(connection: psycopg.AsyncConnection[DictRow]) -> None:
    """LangGraph's checkpoint migrations, one process at a time per schema.

    Two processes starting on a fresh database would otherwise run the migrations together, and PostgreSQL
    aborts one of them with "deadlock detected". The lock is polled with `pg_try_advisory_lock` rather than
    waited for: the migrations build indexes `CONCURRENTLY`, which wait for every open statement, a blocked
    `pg_advisory_lock` call included, and that wait would be a deadlock of its own.
    """
    deadline = time.monotonic() + SETUP_WAIT_S
    while not await _try_lock(connection):
        if time.monotonic() > deadline:
            raise CheckpointerError(f"Another process held the checkpointer's setup lock for {SETUP_WAIT_S:.0f} s")
        await asyncio.sleep(0.05)
    try:
        await AsyncPostgresSaver(connection).setup()
    finally:
        await connection.execute(f"SELECT pg_advisory_unlock({SETUP_LOCK_KEY})")


async def _try_lock(connection: psycopg.AsyncConnection[DictRow]) -> bool:
    """Take the setup lock if it is free; never waits."""
    cursor = await connection.execute(f"SELECT pg_try_advisory_lock({SETUP_LOCK_KEY}) AS taken")
    row = await cursor.fetchone()
    return bool(row and row["taken"])


def _last(value: str | tuple[str, ...]) -> str:
    """One value of a URL query parameter (the last, like libpq, when it is repeated)."""
    return value[-1] if isinstance(value, tuple) else value
