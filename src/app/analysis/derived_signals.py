"""Signals derived from dates and history that a scorecard may weight: tenure, and the trend of the score itself."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

TREND_WINDOWS: tuple[int, ...] = (7, 30, 90)
"""Days over which `score_trends` fits a slope."""

SECONDS_PER_DAY = 86_400.0

START_DATE_FIELD = "start_date"
"""The account field holding the date the customer started (its first contract), read for `tenure_days`."""

TREND_FIELDS: tuple[str, ...] = tuple(f"score_trend_{days}d" for days in TREND_WINDOWS)
DERIVED_FIELDS: tuple[str, ...] = ("tenure_days", *TREND_FIELDS)
"""Signals computed here, not read from an account record: a scorecard may weight or alert on them."""

ScoreHistory = Sequence[tuple[datetime, float]]
"""An account's past scores as (when, score) pairs, from one scorecard."""

StoredScores = Sequence[tuple[datetime, float, tuple[str, str]]]
"""An account's stored scores as (when, score, (scorecard name, version)), from any scorecard."""


def same_scorecard(stored: StoredScores, scorecard: tuple[str, str]) -> list[tuple[datetime, float]]:
    """The stored scores computed by this scorecard (name, version): a trend never mixes scorecards."""
    return [(when, score) for when, score, card in stored if card == scorecard]


def derived_values(
    account: Mapping[str, Any], wanted: Collection[str], *, as_of: datetime, history: ScoreHistory = ()
) -> dict[str, Any]:
    """The derived signals in `wanted` for one account (None when unknown; an unreadable start date too).

    Args:
        account: The raw account record (`start_date` gives the tenure).
        wanted: Which of `DERIVED_FIELDS` to compute.
        as_of: The moment they are computed for.
        history: The account's stored scores from the scorecard that reads the trend.
    """
    values: dict[str, Any] = {}
    if "tenure_days" in wanted and "tenure_days" not in account:
        try:
            values["tenure_days"] = tenure_days(account.get(START_DATE_FIELD), as_of)
        except (TypeError, ValueError):
            values["tenure_days"] = None
    if any(field in wanted for field in TREND_FIELDS):
        values.update(score_trends(history, as_of=as_of))
    return values


def tenure_days(start: date | datetime | str | None, as_of: date | datetime) -> int | None:
    """Whole days from an account's start date to `as_of`; None when unknown or when the start is later.

    Strings are ISO 8601 dates or datetimes; datetimes count by their (UTC) date.

    Raises:
        ValueError: For an unparsable string.
    """
    if start is None:
        return None
    days = (_as_date(as_of) - _as_date(start)).days
    return days if days >= 0 else None


def score_trend(history: Sequence[tuple[datetime, float]], *, as_of: datetime, window_days: int) -> float | None:
    """The least-squares slope of the score, in points per day, over the `window_days` up to `as_of`.

    Args:
        history: (when, score) pairs in any order; naive datetimes mean UTC; later than `as_of` is ignored.
        as_of: The end of the window.
        window_days: How many days back the window reaches.

    Returns:
        The slope, or None with fewer than two points in the window or all at the same moment.
    """
    end = _utc(as_of)
    points = [
        ((_utc(moment) - end).total_seconds() / SECONDS_PER_DAY, float(score))
        for moment, score in history
        if 0 <= (end - _utc(moment)).total_seconds() <= window_days * SECONDS_PER_DAY
    ]
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return None
    return round(sum((x - mean_x) * (y - mean_y) for x, y in points) / spread, 4)


def score_trends(history: Sequence[tuple[datetime, float]], *, as_of: datetime) -> dict[str, float | None]:
    """The score's slope over each of `TREND_WINDOWS`, as signals `score_trend_7d`, `score_trend_30d`, ...."""
    return {f"score_trend_{days}d": score_trend(history, as_of=as_of, window_days=days) for days in TREND_WINDOWS}


def _as_date(value: date | datetime | str) -> date:
    if isinstance(value, str):
        text = value.strip()
        value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    if isinstance(value, datetime):
        return _utc(value).date()
    return value


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
