"""Where the account page's signals come from: the store, the record fields behind each signal, and when.

What the data model holds, nothing more: a signal's value is a field of the account record in the SQL store's
`accounts` table (one JSON record per account, written as a whole by an import, a sync or the sample book), so
its time is that record's `updated_at`; the points are those of the newest scan, which read the record then.
Fields per signal come from the scorecard that computed the score (a signal's field and its penalty's field,
a multiplier's field); `days_to_renewal` is derived from `contract_end_date` on the scan day when absent.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from src.app.analysis.scorecard_model import ScorecardSpec
from src.app.analysis.scorecards import breakdown_fields, load_default_scorecard, load_scorecard_set
from src.app.config import CSMSettings
from src.app.schemas import CSMHealthScore

RECORD_COLUMN = "accounts.record"
"""Where a signal's raw value is stored: the `record` JSON of the account's row in the `accounts` table."""
DERIVED = {"days_to_renewal": "contract_end_date"}
"""Signals a scan derives from another field when the record does not carry them."""


def store_label(settings: CSMSettings) -> str:
    """The store the desk reads, as shown: a SQLite file (relative to here when under it), else its URL, no password."""
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            return "SQLite in memory"
        path = Path(url.database).resolve()
        return f"SQLite {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}"
    name = "PostgreSQL" if url.get_backend_name() == "postgresql" else url.get_backend_name()
    return f"{name} {url.render_as_string(hide_password=True)}"


@functools.lru_cache(maxsize=4)
def _configured_scorecards(path: str | None) -> dict[tuple[str, str], ScorecardSpec]:
    default = load_default_scorecard()
    cards = {(default.name, default.version): default}
    if path is not None:
        cards |= {(card.name, card.version): card for card in load_scorecard_set(path).scorecards.values()}
    return cards


def fields_by_signal(settings: CSMSettings, score: CSMHealthScore) -> dict[str, tuple[str, ...]] | None:
    """The record fields behind each breakdown key of `score` (None: its scorecard is no longer configured)."""
    scorecard = _configured_scorecards(None if settings.scorecard is None else str(settings.scorecard)).get(
        score.scorecard
    )
    return None if scorecard is None else breakdown_fields(scorecard)


def signal_source(
    fields: tuple[str, ...] | None, record: Mapping[str, Any], *, updated_at: datetime | None
) -> dict[str, Any]:
    """One signal's source: the record fields it reads with their values now, and when the record was written."""
    read = []
    for field in fields or ():
        derived_from = DERIVED.get(field)
        if record.get(field) is None and derived_from is not None and record.get(derived_from) is not None:
            read.append({"field": derived_from, "value": record[derived_from], "derives": field})
        else:
            read.append({"field": field, "value": record.get(field), "derives": None})
    return {
        "column": RECORD_COLUMN,
        "fields": read,
        "known": fields is not None,
        "updated_at": None if updated_at is None else updated_at.isoformat(timespec="seconds"),
    }
