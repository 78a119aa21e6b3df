"""LangGraph checkpointers for agent runs, and resumable runs on deterministic thread ids.

`open_checkpointer(settings)` opens `AsyncSqliteSaver` at `$CSM_DATA_DIR/checkpoints.sqlite`, or
`AsyncPostgresSaver` on a small connection pool when the store's one URL (`settings.resolved_database_url`)
is PostgreSQL, so the store and the checkpoints switch together.

`invoke_resumable` runs a graph on a thread whose id is derived from the task (`run_thread_id`): when the
thread holds an unfinished run of the same task (the process died, or a node raised), the run resumes from
its last checkpoint (steps already done, LLM calls included, are not repeated); otherwise a fresh run
starts. Checkpoints are written before each next step (`durability="sync"`) and the thread is deleted once
the run completes, so finished runs leave nothing behind and a rerun always starts clean.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import date
from typing import Any

import psycopg
import structlog
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.pregel import Pregel
from langgraph.types import Durability
from psycopg.conninfo import make_conninfo
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url

from src.app.config import CSMSettings

log = structlog.get_logger(__name__)

CHECKPOINTS_FILE = "checkpoints.sqlite"
DURABILITY: Durability = "sync"
"""Each step's checkpoint is written before the next step starts: a crash loses at most the step in flight."""
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
async def open_checkpointer(settings: CSMSettings) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """The checkpointer for `settings`, its tables created, open for the duration of the `async with` block."""
    url = settings.resolved_database_url
    async with AsyncExitStack() as stack:
        if is_postgres_url(url):
            saver: BaseCheckpointSaver[str] = await _open_postgres(stack, url)
        else:
            saver = await _open_sqlite(stack, settings)
        yield saver


def run_thread_id(task: Mapping[str, Any], *, subject: str, day: date) -> str:
    """The deterministic thread id of a task's run: `csm:{type}:{subject}:{period or day}:{task digest}`.

    The period is the task's QBR `period` when it has one, else the local day, so a rerun the same day (or
    of the same quarter's QBR) finds an unfinished run to resume. The digest of the whole task keeps
    different tasks on one account apart (e.g. a quarterly and a contract-proximity QBR).
    """
    period = task.get("period") if isinstance(task.get("period"), str) else None
    canonical = json.dumps(task, sort_keys=True, default=str, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    return f"csm:{task.get('type')}:{subject}:{period or day.isoformat()}:{digest}"


async def invoke_resumable(
    graph: Pregel[Any, Any, Any, Any],
    graph_input: Any,
    *,
    checkpointer: BaseCheckpointSaver[str],
    thread_id: str,
    context: Any,
) -> dict[str, Any]:
    """Run `graph` (compiled with `checkpointer`) on `thread_id`: resume an unfinished run there, else start one.

    The thread is deleted when the run completes; a run that raises keeps its checkpoints for the next call.
    """
    config: Any = {"configurable": {"thread_id": thread_id}}
    unfinished = bool((await graph.aget_state(config)).next)
    if unfinished:
        log.info("run_resumed", thread_id=thread_id)
    output = await graph.ainvoke(None if unfinished else graph_input, config, context=context, durability=DURABILITY)
    await checkpointer.adelete_thread(thread_id)
    result: dict[str, Any] = output
    return result


def _last(value: str | tuple[str, ...]) -> str:
    """One value of a URL query parameter (the last, like libpq, when it is repeated)."""
    return value[-1] if isinstance(value, tuple) else value


async def _open_sqlite(stack: AsyncExitStack, settings: CSMSettings) -> AsyncSqliteSaver:
    path = settings.data_dir / CHECKPOINTS_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        saver = await stack.enter_async_context(AsyncSqliteSaver.from_conn_string(str(path)))
        await saver.setup()
    except Exception as error:
        raise CheckpointerError(f"Cannot open the SQLite checkpointer at {path}: {error}") from error
    return saver


async def _open_postgres(stack: AsyncExitStack, url: str) -> AsyncPostgresSaver:
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
    return AsyncPostgresSaver(pool)
