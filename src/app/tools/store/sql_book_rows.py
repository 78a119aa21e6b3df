"""Score rows applied to the desk's book tables (`account_health`, `book_days`), in bulk, on one connection.

Two writers share this: the store's own score writes (`keep_book`, in the transaction that inserts the scores, so
a scan leaves the book current and the desk's first view reads nothing back) and the desk's catch-up
(`BookStore.refresh`, for score rows an older version wrote without keeping the book).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from itertools import chain, product
from math import copysign
from operator import itemgetter
from typing import Any

from pydantic_core import to_json
from sqlalchemy import Table, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from src.app.analysis.health import SIGNAL_MAX_POINTS, cents_lost
from src.app.analysis.scan import NUMPY_REPAID_RECORDS
from src.app.schemas import CSMHealthScore
from src.app.tools.store.sql_engine import driver_rows, insert_bound_rows
from src.app.tools.store.sql_tables import (
    ACCOUNT_HEALTH,
    ACCOUNTS,
    BOOK_DAYS,
    DESK_MARKS,
    HEALTH_SCORES,
    JSONText,
    as_utc,
    id_table,
)

ACCOUNT_FIELDS = ("name", "status", "rep_email", "arr", "segment", "renewal_date")
"""The account columns `account_health` keeps a copy of."""
ACCOUNTS_MARK = "accounts_updated_at"
"""The `desk_marks` row naming the newest account update whose listing fields `account_health` holds."""
BOOK_LOCK_KEY = 0x63736D626F6F6B  # "csmbook"
"""PostgreSQL advisory lock held by every writer of score rows and of the book, so rows are applied in id order."""
TOP_SIGNALS = 3
_INDEXED = ("score", "rag", "previous_score", "delta")
"""The `account_health` columns an upsert sets from the score that have an index (`previous_score` has none, but
it moves with `score`)."""
_MOVING = {
    flags: tuple(name for name, moved in zip(_INDEXED, flags, strict=True) if moved)
    for flags in product((False, True), repeat=len(_INDEXED))
}
"""The columns named by which of `_INDEXED` move."""
StoredHealth = tuple[str, float, float | None, float | None]
"""An account's row in the book as an upsert compares with it: RAG, score, previous score, delta."""
_ID_BATCH = 900


def lock_book(connection: Connection) -> None:
    """On PostgreSQL, wait for the book's transaction lock (SQLite has one writer at a time already)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": BOOK_LOCK_KEY})


def book_mark(connection: Connection) -> int:
    """The id of the last score row the book tables hold (0: none)."""
    return int(connection.execute(select(func.max(BOOK_DAYS.c.last_score_id))).scalar() or 0)


def keep_book(connection: Connection, scores: Sequence[CSMHealthScore]) -> bool:
    """Apply the scores just inserted (under `lock_book`) to the book tables; False when it must not.

    It must not when score rows before these were never applied (a store an older version wrote: the desk's
    catch-up reads those in order first) or when the scores span several days (the catch-up snapshots each day).
    """
    utc = {when: as_utc(when) for when in {score.computed_at for score in scores}}
    days = {when.date().isoformat() for when in utc.values()}
    h = HEALTH_SCORES.c
    pending = connection.execute(select(func.count(), func.max(h.id)).where(h.id > book_mark(connection)))
    count, newest_id = pending.one()
    if len(days) != 1 or count != len(scores):
        return False
    if len({score.account_id for score in scores}) != len(scores):
        newest: dict[str, CSMHealthScore] = {}
        for score in scores:
            kept = newest.get(score.account_id)
            if kept is None or score.computed_at >= kept.computed_at:
                newest[score.account_id] = score
        scores = list(newest.values())
    if connection.execute(select(DESK_MARKS.c.value).where(DESK_MARKS.c.name == ACCOUNTS_MARK)).scalar() is None:
        newest_update = connection.execute(select(func.max(ACCOUNTS.c.updated_at))).scalar()
        if newest_update is not None:  # the rows written below carry every account's fields as of now
            upsert(connection, DESK_MARKS, "name", [{"name": ACCOUNTS_MARK, "value": newest_update.isoformat()}])
    rows = health_rows(
        [s.account_id for s in scores],
        [s.score for s in scores],
        [s.rag for s in scores],
        [s.churn_risk_level for s in scores],
        [s.signal_breakdown for s in scores],
        [utc[s.computed_at] for s in scores],
    )
    apply_day(connection, days.pop(), rows, last_id=int(newest_id))
    return True


def apply_day(connection: Connection, day: str, rows: list[dict[str, Any]], *, last_id: int) -> None:
    """Upsert one day's newest health rows and snapshot the book's RAG counts as of them.

    Rows of accounts new to the book get their accounts' listing fields; rows already there keep theirs (the
    desk's refresh copies those of accounts updated since, by the `updated_at` index). The counts are the last
    snapshot's with these accounts' RAG before and after swapped, so a page costs what its accounts do, not
    what the whole book does; without a snapshot to start from, the book is counted.
    """
    before = _stored_health(connection, [row["account_id"] for row in rows])
    last = connection.execute(select(BOOK_DAYS.c.counts).order_by(BOOK_DAYS.c.last_score_id.desc()).limit(1))
    snapshot_counts = last.scalar()
    counts = None if snapshot_counts is None else Counter[str](snapshot_counts)
    upsert_health(connection, [row for row in rows if row["account_id"] in before], stored=before)
    fresh = [row for row in rows if row["account_id"] not in before]
    if fresh:
        fields = account_fields(connection, [row["account_id"] for row in fresh])
        empty = dict.fromkeys(ACCOUNT_FIELDS)
        _insert_rows(connection, ACCOUNT_HEALTH, [{**row, **fields.get(row["account_id"], empty)} for row in fresh])
    if counts is not None:
        # Only an account whose RAG the row changes can change the counts (whether or not the upsert took the row,
        # which an older stored score keeps out); only those are read again.
        moved = [
            row["account_id"]
            for row in rows
            if row["account_id"] in before and row["rag"] != before[row["account_id"]][0]
        ]
        counts.subtract(before[account_id][0] for account_id in moved)
        counts.update(stored[0] for stored in (_stored_health(connection, moved) if moved else {}).values())
        counts.update(row["rag"] for row in fresh)
    if counts is None or min(counts.values(), default=0) < 0:
        counts = Counter(dict(connection.execute(select(ACCOUNT_HEALTH.c.rag, func.count()).group_by("rag")).all()))
    snapshot = {"day": day, "counts": {rag: int(n) for rag, n in sorted(counts.items()) if n}, "last_score_id": last_id}
    upsert(connection, BOOK_DAYS, "day", [snapshot])


def _stored_health(connection: Connection, account_ids: list[str]) -> dict[str, StoredHealth]:
    """The RAG, score, previous score and delta each of these accounts has in the book now, for those it holds."""
    wanted = id_table(account_ids, connection.dialect.name)
    h = ACCOUNT_HEALTH.c
    query = select(h.account_id, h.rag, h.score, h.previous_score, h.delta).where(
        h.account_id.in_(select(wanted.c.value))
    )
    return {
        account_id: (rag, score, previous, delta)
        for account_id, rag, score, previous, delta in driver_rows(connection, query)
    }


def account_fields(connection: Connection, account_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each account's listing fields, by id."""
    found: dict[str, dict[str, Any]] = {}
    columns = [ACCOUNTS.c.account_id, *(ACCOUNTS.c[name] for name in ACCOUNT_FIELDS)]
    for batch in _batches(account_ids):
        for row in connection.execute(select(*columns).where(ACCOUNTS.c.account_id.in_(batch))).mappings():
            found[row["account_id"]] = {name: row[name] for name in ACCOUNT_FIELDS}
    return found


def copy_account_fields(connection: Connection, since: datetime) -> None:
    """Copy the listing fields of accounts updated after `since` (found by the `updated_at` index)."""
    changed = (
        select(ACCOUNTS.c.account_id, *(ACCOUNTS.c[name] for name in ACCOUNT_FIELDS))
        .where(ACCOUNTS.c.updated_at > since)
        .subquery("changed")
    )
    statement = (
        update(ACCOUNT_HEALTH)
        .where(ACCOUNT_HEALTH.c.account_id == changed.c.account_id)
        .values({name: changed.c[name] for name in ACCOUNT_FIELDS})
    )
    connection.execute(statement)


def health_rows(
    account_ids: Sequence[str],
    scores: Sequence[float],
    rags: Sequence[str],
    churn_risk_levels: Sequence[str],
    breakdowns: Sequence[Mapping[str, float]],
    computed_at: Sequence[datetime],
    *,
    max_points: Mapping[str, float] = SIGNAL_MAX_POINTS,
) -> list[dict[str, Any]]:
    """`account_health` rows without their account fields: each score and the signals that cost it the most.

    `top_signals` is JSON text already (`top_signals` serialised), so the insert binds it as it is.
    """
    tops = top_signals_json(breakdowns, max_points)
    columns = zip(account_ids, scores, rags, churn_risk_levels, tops, computed_at, strict=True)
    return [
        {
            "account_id": account_id,
            "score": score,
            "rag": rag,
            "previous_score": None,
            "delta": None,
            "churn_risk_level": level,
            "top_signals": top,
            "computed_at": when,
        }
        for account_id, score, rag, level, top, when in columns
    ]


def top_signals(breakdowns: Sequence[Mapping[str, float]], max_points: Mapping[str, float]) -> list[list[list[Any]]]:
    """Per breakdown, up to `TOP_SIGNALS` [signal, points lost] pairs, the larger loss first, then by name.

    Points lost are compared in whole cents (breakdowns hold points rounded to 2 places). A page is done at once
    with numpy, or breakdown by breakdown while numpy is not loaded and the page is too small to repay its import.
    """
    names = sorted(max_points)
    if "numpy" not in sys.modules and len(breakdowns) < NUMPY_REPAID_RECORDS:
        return [_top_of(breakdown, names, max_points) for breakdown in breakdowns]
    return _top_signals_at_once(breakdowns, names, max_points)


def _top_of(breakdown: Mapping[str, float], names: list[str], max_points: Mapping[str, float]) -> list[list[Any]]:
    cents = [-cents_lost(breakdown.get(name, 0.0), max_points[name]) for name in names]
    order = sorted(range(len(names)), key=cents.__getitem__)[:TOP_SIGNALS]  # stable: ties keep name order
    return [[names[column], -cents[column] / 100] for column in order if cents[column] < 0]


def top_signals_json(breakdowns: Sequence[Mapping[str, float]], max_points: Mapping[str, float]) -> list[JSONText]:
    """`top_signals` of each breakdown as JSON text, written directly from the losses of a large page.

    Accounts of a page often lose the same points on the same signals: each distinct top is written once.
    """
    names = sorted(max_points)
    if "numpy" not in sys.modules and len(breakdowns) < NUMPY_REPAID_RECORDS:
        return [JSONText(to_json(_top_of(breakdown, names, max_points)).decode()) for breakdown in breakdowns]
    import numpy as np

    quoted = [to_json(name).decode() for name in names]
    columns, lost = _largest_losses(breakdowns, names, max_points)
    pairs: dict[tuple[int, int], str] = {}  # a page's accounts share most of their (signal, loss) pairs
    texts: dict[tuple[int, ...], JSONText] = {}  # and often their whole top

    def pair(column: int, cent: int) -> str:
        found = pairs.get((column, cent))
        if found is None:
            found = pairs[column, cent] = f"[{quoted[column]},{-cent / 100!r}]"
        return found

    def text(row: tuple[int, ...]) -> JSONText:
        found = texts.get(row)
        if found is None:
            listed = zip(row[:TOP_SIGNALS], row[TOP_SIGNALS:], strict=True)
            found = texts[row] = JSONText("[" + ",".join([pair(c, cent) for c, cent in listed if cent < 0]) + "]")
        return found

    return [text(row) for row in map(tuple, np.concatenate([columns, lost], axis=1).tolist())]


def _top_signals_at_once(
    breakdowns: Sequence[Mapping[str, float]], names: list[str], max_points: Mapping[str, float]
) -> list[list[list[Any]]]:
    columns, lost = _largest_losses(breakdowns, names, max_points)
    return [
        [[names[column], -cent / 100] for column, cent in zip(picked, row, strict=True) if cent < 0]
        for picked, row in zip(columns.tolist(), lost.tolist(), strict=True)
    ]


def _largest_losses(
    breakdowns: Sequence[Mapping[str, float]], names: list[str], max_points: Mapping[str, float]
) -> tuple[Any, Any]:
    """Per breakdown, the columns of its `TOP_SIGNALS` largest losses and those losses as negative whole cents."""
    import numpy as np  # imported by the first large page of scores

    pick = itemgetter(*names)

    def points(breakdown: Mapping[str, float]) -> Any:
        try:
            return pick(breakdown)
        except KeyError:  # a breakdown without some signal counts it as 0 points (its other breakdowns are picked)
            return [breakdown.get(name, 0.0) for name in names]

    count = len(breakdowns) * len(names)
    got = np.fromiter(chain.from_iterable(map(points, breakdowns)), dtype=np.float64, count=count)
    got = got.reshape(len(breakdowns), len(names))
    best = np.array([max_points[name] for name in names], dtype=np.float64)
    cents = ((got - best) * 100 - 0.5).astype(np.int64)  # truncated toward zero: minus `cents_lost`
    order = np.argsort(cents, axis=1, kind="stable")[:, :TOP_SIGNALS]  # ties keep name order
    return order, np.take_along_axis(cents, order, axis=1)


def upsert_health(
    connection: Connection, rows: list[dict[str, Any]], *, stored: Mapping[str, StoredHealth] | None = None
) -> None:
    """Newest scores in: a newer score moves the stored one to `previous_score` and records the change as `delta`.

    Given the rows' `stored` values, an indexed column that a row would set to the value it already holds is left
    out of that row's update (rows are upserted in groups by the columns they move): SQLite rewrites a column's
    index entries whenever the column is set, even to its own value, and a daily scan moves few scores.
    """
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        moving = _INDEXED if stored is None else _moving(row, stored.get(row["account_id"]))
        groups.setdefault(moving, []).append(row)
    for moving, group in groups.items():
        statement = _insert(connection, ACCOUNT_HEALTH)
        current, fresh = ACCOUNT_HEALTH.c, statement.excluded
        columns = {name: fresh[name] for name in group[0] if name not in ("account_id", *_INDEXED)}
        moved = {"score": fresh.score, "rag": fresh.rag, "previous_score": current.score}
        moved["delta"] = fresh.score - current.score
        columns |= {name: moved[name] for name in moving}
        # A score read late but computed earlier (history written after a scan) never replaces a newer one.
        newer = fresh.computed_at > current.computed_at
        upserting = statement.on_conflict_do_update(index_elements=["account_id"], set_=columns, where=newer)
        if connection.dialect.name == "sqlite":
            insert_bound_rows(connection, ACCOUNT_HEALTH, group, upserting)
        else:
            connection.execute(upserting, group)


def _moving(row: Mapping[str, Any], stored: StoredHealth | None) -> tuple[str, ...]:
    """The indexed columns whose value the row's update changes (all of them for an account not in the book)."""
    if stored is None:
        return _INDEXED
    rag, score, previous_score, delta = stored
    new = row["score"]
    moved = (not _same(new, score), row["rag"] != rag, not _same(score, previous_score), not _same(new - score, delta))
    return _MOVING[moved]


def _same(new: Any, old: Any) -> bool:
    """Whether a column holding `old` would hold the very same value after being set to `new` (0.0 is not -0.0)."""
    if old is None or new != old:
        return new is None and old is None
    return not isinstance(new, float) or new != 0 or copysign(1.0, new) == copysign(1.0, old)


def upsert(connection: Connection, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
    """Insert rows, or update every other column of those whose `key` exists."""
    statement = _insert(connection, table)
    columns = {name: statement.excluded[name] for name in rows[0] if name != key}
    connection.execute(statement.on_conflict_do_update(index_elements=[key], set_=columns), rows)


def _insert_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if connection.dialect.name == "sqlite":
        insert_bound_rows(connection, table, rows)
    else:
        connection.execute(insert(table), rows)


def _batches(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), _ID_BATCH):
        yield ids[start : start + _ID_BATCH]


def _insert(connection: Connection, table: Table) -> Any:
    return (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(table)
