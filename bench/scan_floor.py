"""The least a daily scan's storage work can cost on SQLite: the scan's own reads and writes, replayed by the driver.

A real scan runs once on a copy of the prepared store, and the rows it wrote are kept: its history rows and the
book rows it left. On a fresh copy, `replay` then does page by page, one transaction each (as the scan does), only
what any scan keeping these rows must do: read the page's accounts (their scan JSON, not parsed), read their book
rows, insert the same history rows, set the book columns that moved (the rest as the scan sets them) and snapshot
the day's counts. No scoring, no validation, no JSON, no SQLAlchemy: sqlite3's executemany on values already built.
Its CPU time is a floor for any design that persists one history row per account and keeps the desk's book.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter, process_time
from typing import Any

from sqlalchemy.engine import make_url

from src.app.scan.book import SCAN_PAGE_SIZE
from src.app.tools.store.sql_engine import WAL_CHECKPOINT_PAGES

HISTORY_COLUMNS = (
    "account_id",
    "score",
    "rag",
    "churn_risk_level",
    "churn_triggered_by",
    "breakdown",
    "computed_at",
    "payload",
    "scorecard_name",
    "scorecard_version",
)
MOVING = ("score", "rag", "previous_score", "delta")
"""The book's indexed columns (and `previous_score`), set only where their value moves."""
ALWAYS = ("churn_risk_level", "top_signals", "computed_at")
"""The book columns a scan sets on every row it updates."""


@dataclass(frozen=True)
class Written:
    """What one scan wrote: its history rows and the book rows it left, by account id in id order."""

    history: dict[str, tuple[Any, ...]]
    book: dict[str, tuple[Any, ...]]
    """(score, rag, previous_score, delta, churn_risk_level, top_signals, computed_at) per account."""
    day: str
    counts: str


def database_file(url: str) -> Path:
    """The file of a SQLite store URL."""
    return Path(make_url(url).database or "")


def written_since(database: Path, last_history_id: int) -> Written:
    """The history rows after `last_history_id` and the book rows of their accounts, read after a scan."""
    with _connected(database) as connection:
        history = {
            row[0]: row
            for row in connection.execute(
                f"SELECT {', '.join(HISTORY_COLUMNS)} FROM health_scores WHERE id > ? ORDER BY account_id",
                (last_history_id,),
            )
        }
        book = {
            row[0]: row[1:]
            for row in connection.execute(
                f"SELECT account_id, {', '.join(MOVING + ALWAYS)} FROM account_health ORDER BY account_id"
            )
            if row[0] in history
        }
        day, counts = connection.execute("SELECT day, counts FROM book_days ORDER BY last_score_id DESC").fetchone()
    return Written(history=history, book=book, day=day, counts=counts)


def last_history_id(database: Path) -> int:
    """The newest history row's id (0: none)."""
    with _connected(database) as connection:
        return int(connection.execute("SELECT coalesce(max(id), 0) FROM health_scores").fetchone()[0])


def replay(database: Path, written: Written) -> dict[str, float]:
    """Write what the scan wrote into a fresh copy of its store, page by page: CPU and wall seconds.

    The statements and their rows are built first, untimed: only the driver's work is measured.
    """
    with _connected(database) as connection:
        before = {
            row[0]: row[1:] for row in connection.execute(f"SELECT account_id, {', '.join(MOVING)} FROM account_health")
        }
        pages = _pages(written, before)
        cpu, wall = process_time(), perf_counter()
        for page in pages:
            _replay_page(connection, page)
        cpu, wall = process_time() - cpu, perf_counter() - wall
    return {"cpu_s": cpu, "wall_s": wall, "accounts": len(written.history)}


@dataclass(frozen=True)
class _Page:
    first: str
    last: str
    writes: list[tuple[str, list[tuple[Any, ...]]]]
    """Each statement with its rows: the history insert, the book updates by the columns they set."""
    snapshot: tuple[str, str]


def _pages(written: Written, before: dict[str, tuple[Any, ...]]) -> list[_Page]:
    """The scan's writes cut into its pages; a book row sets the `MOVING` columns that moved, and `ALWAYS`."""
    ids = list(written.history)
    insert = (
        f"INSERT INTO health_scores ({', '.join(HISTORY_COLUMNS)}) VALUES ({', '.join('?' * len(HISTORY_COLUMNS))})"
    )
    pages = []
    for start in range(0, len(ids), SCAN_PAGE_SIZE):
        page = ids[start : start + SCAN_PAGE_SIZE]
        updates: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for account_id in page:
            old, new = before.get(account_id), written.book[account_id]
            moved = tuple(name for i, name in enumerate(MOVING) if old is None or old[i] != new[i])
            columns = moved + ALWAYS
            values = tuple(new[(MOVING + ALWAYS).index(name)] for name in columns)
            updates.setdefault(columns, []).append((*values, account_id))
        writes = [(insert, [written.history[account_id] for account_id in page])]
        for columns, rows in updates.items():
            assignments = ", ".join(f"{name} = ?" for name in columns)
            writes.append((f"UPDATE account_health SET {assignments} WHERE account_id = ?", rows))
        pages.append(_Page(page[0], page[-1], writes, (written.day, written.counts)))
    return pages


def _replay_page(connection: sqlite3.Connection, page: _Page) -> None:
    connection.execute("BEGIN IMMEDIATE")
    connection.execute(
        "SELECT account_id, scan_record FROM accounts WHERE account_id BETWEEN ? AND ? AND +status = 'active'",
        (page.first, page.last),
    ).fetchall()
    connection.execute(
        f"SELECT account_id, {', '.join(MOVING)} FROM account_health WHERE account_id BETWEEN ? AND ?",
        (page.first, page.last),
    ).fetchall()
    for statement, rows in page.writes:
        connection.executemany(statement, rows)
    connection.execute(
        "INSERT INTO book_days (day, counts, last_score_id) VALUES (?, ?, (SELECT max(id) FROM health_scores)) "
        "ON CONFLICT (day) DO UPDATE SET counts = excluded.counts, last_score_id = excluded.last_score_id",
        page.snapshot,
    )
    connection.execute("COMMIT")


@contextmanager
def _connected(database: Path) -> Iterator[sqlite3.Connection]:
    """A driver connection in autocommit mode with the store's own pragmas, closed on exit."""
    connection = sqlite3.connect(database, isolation_level=None)
    try:
        for pragma in ("foreign_keys=ON", "journal_mode=WAL", "synchronous=NORMAL"):
            connection.execute(f"PRAGMA {pragma}")
        connection.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        yield connection
    finally:
        connection.close()
