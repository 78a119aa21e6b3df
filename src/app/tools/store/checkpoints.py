"""LangGraph checkpointers for agent runs (resumable runs are in `agents/customer_success/runs.py`).

`open_checkpointer(settings)` opens `AsyncSqliteSaver` at `$CSM_DATA_DIR/checkpoints.sqlite`, or
`AsyncPostgresSaver` on a small connection pool when the store's one URL (`settings.resolved_database_url`)
is PostgreSQL, so the store and the checkpoints switch together. Checkpoints deserialize only LangGraph's
safe types and the state types the caller names (`allowed_types`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import aiosqlite
import structlog
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from sqlalchemy.engine import make_url

from src.app.config import CSMSettings
from src.app.tools.store import CheckpointerError

log = structlog.get_logger(__name__)

CHECKPOINTS_FILE = "checkpoints.sqlite"


def is_postgres_url(url: str) -> bool:
    """True for a SQLAlchemy PostgreSQL URL (any driver: `postgresql://`, `postgresql+psycopg://`, ...)."""
    return make_url(url).get_backend_name() == "postgresql"


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
            from src.app.tools.store.postgres import open_postgres_checkpointer  # psycopg only when used

            saver: BaseCheckpointSaver[str] = await open_postgres_checkpointer(stack, url, serde)
        else:
            saver = await _open_sqlite(stack, settings, serde)
        yield saver


async def _open_sqlite(stack: AsyncExitStack, settings: CSMSettings, serde: JsonPlusSerializer) -> AsyncSqliteSaver:
    path = settings.data_dir / CHECKPOINTS_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        saver = AsyncSqliteSaver(await stack.enter_async_context(aiosqlite.connect(str(path))), serde=serde)
        await saver.setup()
    except Exception as error:
        raise CheckpointerError(f"Cannot open the SQLite checkpointer at {path}: {error}") from error
    return saver
