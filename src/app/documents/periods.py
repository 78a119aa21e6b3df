"""Quarters and score history lookups: which stored score closed a quarter, and which one a period started from."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from src.app.schemas import CSMHealthScore

_QUARTER = re.compile(r"^\s*Q([1-4])\s+(\d{4})\s*$", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class Quarter:
    """A calendar quarter, e.g. Q4 2026 (1 Oct to 31 Dec 2026)."""

    year: int
    number: int

    @classmethod
    def parse(cls, label: str) -> Quarter:
        """The quarter of a label like "Q4 2026"; raises ValueError for anything else."""
        match = _QUARTER.match(label)
        if match is None:
            raise ValueError(f"a period must be a quarter like 'Q4 2026', got {label!r}")
        return cls(year=int(match.group(2)), number=int(match.group(1)))

    @property
    def label(self) -> str:
        """The quarter as people write it: "Q4 2026"."""
        return f"Q{self.number} {self.year}"

    @property
    def start(self) -> date:
        """Its first day."""
        return date(self.year, 3 * self.number - 2, 1)

    @property
    def end(self) -> date:
        """Its last day."""
        return self.next().start - timedelta(days=1)

    def next(self) -> Quarter:
        """The quarter after this one."""
        return Quarter(self.year + 1, 1) if self.number == 4 else Quarter(self.year, self.number + 1)

    def previous(self) -> Quarter:
        """The quarter before this one."""
        return Quarter(self.year - 1, 4) if self.number == 1 else Quarter(self.year, self.number - 1)

    def last(self, count: int) -> list[Quarter]:
        """The `count` quarters ending with this one, oldest first."""
        quarters = [self]
        while len(quarters) < count:
            quarters.insert(0, quarters[0].previous())
        return quarters


def local_day(moment: datetime, tz: tzinfo) -> date:
    """The calendar day of a moment in `tz` (a naive moment is UTC)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return aware.astimezone(tz).date()


def by_time(scores: Iterable[CSMHealthScore]) -> list[CSMHealthScore]:
    """Scores oldest first (stored history may come in any order)."""
    return sorted(scores, key=lambda score: score.computed_at)


def score_as_of(scores: Sequence[CSMHealthScore], day: date, tz: tzinfo) -> CSMHealthScore | None:
    """The newest score computed on or before `day` (local): a quarter's close when `day` is its last day."""
    found = [score for score in scores if local_day(score.computed_at, tz) <= day]
    return max(found, key=lambda score: score.computed_at, default=None)


def score_before(scores: Sequence[CSMHealthScore], day: date, tz: tzinfo) -> CSMHealthScore | None:
    """The newest score computed before `day` (local): what a period starting on `day` started from."""
    return score_as_of(scores, day - timedelta(days=1), tz)


def daily_points(scores: Sequence[CSMHealthScore], start: date, end: date, tz: tzinfo) -> list[tuple[date, float]]:
    """(day, score) for each local day from `start` to `end` with a score: the day's last score, oldest first."""
    last_of_day: dict[date, CSMHealthScore] = {}
    for score in by_time(scores):
        day = local_day(score.computed_at, tz)
        if start <= day <= end:
            last_of_day[day] = score
    return [(day, score.score) for day, score in sorted(last_of_day.items())]
