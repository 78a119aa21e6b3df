"""LangGraph checkpointers for agent runs (resumable runs are in `agents/customer_success/runs.py`).

`open_checkpointer(settings)` opens `AsyncSqliteSaver` at `$CSM_DATA_DIR/checkpoints.sqlite`, or
`AsyncPostgresSaver` on a small connection pool when the store's one URL (`settings.resolved_database_url`)
is PostgreSQL, so the store and the checkpoints switch together. Checkpoints deserialize only LangGraph's
safe types and the state types the caller names (`allowed_types`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiosqlite
import psycopg
import structlog
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg.conninfo import make_conninfo
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url

from src.app.config import CSMSettings

log = structlog.get_logger(__name__)

CHECKPOINTS_FILE = "checkpoints.sqlite"
POSTGRES_POOL_SIZE = 4
CONNECT_TIMEOUT_S = 10


class CheckpointerError(RuntimeError):
    """The checkpoint database could not be opened (the message never contains a password)."""


def is_postgres_url(url: str) -> bool:
    """True for a SQLAlchemy PostgreSQL URL (any driver: `postgresql://`, `postgresql+psycopg://`, ...)."""
    return make_url(url).get_backend_name() == "postgresql"


def libpq_conninfo(sqlalchemy_url: str) -> str:
    """The libpq connection string (`host=... dbname=...`) of a SQLAlchemy PostgreSQL URL, query options included.

    Key/value form rather than a URI: values are quoted by psycopg, so passwords and `options` with spaces or
    URL-special characters reach the server exactly as SQLAlchemy would pass them.
    """
    url = make_url(sqlalchemy_url)
    parts = {"host": url.host, "port": url.port, "dbname": url.database, "user": url.username}
    parts |= {"password": url.password, **{key: _last(value) for key, value in url.query.items()}}
    return make_conninfo("", **{key: value for key, value in parts.items() if value is not None})


@asynccontextmanager
async def open_checkpointer(
    settings: CSMSettings, *, allowed_types: Sequence[type] = ()
) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """The checkpointer for `settings`, its tables created, open for the duration of the `async with` block.

    `allowed_types` are the models a graph's state holds: the only types besides LangGraph's safe ones that a
    checkpoint may turn back into objects.
    """
    url = settings.resolved_database_url
    serde = JsonPlusSerializer(allowed_msgpack_modules=[(kind.__module__, kind.__name__) for kind in allowed_types])
    async with AsyncExitStack() as stack:
        if is_postgres_url(url):
            saver: BaseCheckpointSaver[str] = await _open_postgres(stack, url, serde)
        else:
            saver = await _open_sqlite(stack, settings, serde)
        yield saver


def _last(value: str | tuple[str, ...]) -> str:
    """One value of a URL query parameter (the last, like libpq, when it is repeated)."""
    return value[-1] if isinstance(value, tuple) else value


async def _open_sqlite(stack: AsyncExitStack, settings: CSMSettings, serde: JsonPlusSerializer) -> AsyncSqliteSaver:
    path = settings.data_dir / CHECKPOINTS_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        saver = AsyncSqliteSaver(await stack.enter_async_context(aiosqlite.connect(str(path))), serde=serde)
        await saver.setup()
    except Exception as error:
        raise CheckpointerError(f"Cannot open the SQLite checkpointer at {path}: {error}") from error
    return saver


async def _open_postgres(stack: AsyncExitStack, url: str, serde: JsonPlusSerializer) -> AsyncPostgresSaver:
    """Create the tables over one direct connection (clear connection errors), then serve runs from a pool."""
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
