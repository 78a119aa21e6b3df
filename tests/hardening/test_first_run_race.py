"""First-run race: two processes starting together on a fresh store both succeed, and the work is done once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy import make_url

from src.app.tools.store.sql_engine import create_store_engine
from tests.hardening.conftest import ROOT, csm_env
from tests.support.servers import fresh_postgres_schema

WORKER = """
import asyncio, sys
from src.app.tools.store.sql import SQLStore
from src.app.tools.store import AuditEntry

async def main(url: str) -> None:
    store = SQLStore(url)
    await store.record_audit(AuditEntry(artifact="x", target="t", idempotency_key="once"))
    print(await store.count("audit_log"))
    await store.aclose()

asyncio.run(main(sys.argv[1]))
"""

POSTGRES_WORKER = """
import asyncio, sys
from src.app.config import CSMSettings
from src.app.tools.store.checkpoints import open_checkpointer
from src.app.tools.store.sql import SQLStore
from src.app.tools.store import AuditEntry

async def main(url: str) -> None:
    store = SQLStore(url)
    settings = CSMSettings(database_url=url, _env_file=None)
    async with open_checkpointer(settings) as saver:
        await saver.aget_tuple({"configurable": {"thread_id": "first-run"}})
    await store.record_audit(AuditEntry(artifact="x", target="t", idempotency_key="once"))
    print(await store.count("audit_log"))
    await store.aclose()

asyncio.run(main(sys.argv[1]))
"""


def test_two_processes_on_a_fresh_sqlite_store_both_succeed_and_write_once(tmp_path: Path) -> None:
    for round_ in range(4):
        _race(WORKER, f"sqlite:///{tmp_path / f'fresh-{round_}.sqlite'}", tmp_path)


def test_a_connection_opened_while_a_fresh_file_is_being_written_waits_to_switch_to_wal(tmp_path: Path) -> None:
    """SQLite refuses the switch to WAL at once, without its busy timeout, while another writer holds the file."""
    path = tmp_path / "fresh.sqlite"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("CREATE TABLE first_writer (x)")
    threading.Timer(0.3, writer.execute, ["COMMIT"]).start()
    engine = create_store_engine(make_url(f"sqlite:///{path}"))
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("SELECT count(*) FROM first_writer").scalar() == 0
    engine.dispose()
    writer.close()


def test_two_processes_on_a_fresh_postgres_store_and_checkpointer_both_succeed_and_write_once(
    tmp_path: Path,
) -> None:
    """The store's tables and LangGraph's checkpoint migrations, made by two processes at once on a fresh schema."""
    for _ in range(3):
        with fresh_postgres_schema() as url:
            _race(POSTGRES_WORKER, url, tmp_path)


def _race(worker: str, url: str, data_dir: Path) -> None:
    """Start two processes running `worker` on `url` at once; both must exit 0 and see exactly one audit row."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", worker, url],
            cwd=ROOT,
            env=csm_env(data_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-2000:]
        assert out.strip() == "1"
