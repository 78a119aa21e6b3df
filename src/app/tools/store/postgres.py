"""PostgreSQL connections for the checkpointer: libpq connection strings and the pooled `AsyncPostgresSaver`.

Imported only when the store's URL is PostgreSQL, so commands on the embedded SQLite store never load psycopg.
"""

from __future__ import annotations

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
            await AsyncPostgresSaver(connection).setup()
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


def _last(value: str | tuple[str, ...]) -> str:
    """One value of a URL query parameter (the last, like libpq, when it is repeated)."""
    return value[-1] if isinstance(value, tuple) else value
