"""Signals derived from dates and history that a scorecard may weight: tenure, and the trend of the score itself."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

TREND_WINDOWS: tuple[int, ...] = (7, 30, 90)
"""Days over which `score_trends` fits a slope."""

SECONDS_PER_DAY = 86_400.0


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
