"""`Retry-After` values: delta-seconds, HTTP dates, and what cannot be read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from src.app.tools.retry_after import retry_after_seconds


@pytest.mark.parametrize(("value", "expected"), [("2", 2.0), ("0.5", 0.5), ("-3", 0.0), (7, 7.0)])
def test_delta_seconds_are_read_and_never_negative(value: object, expected: float) -> None:
    assert retry_after_seconds(value) == expected


def test_an_http_date_is_the_time_left_until_it() -> None:
    in_ten = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    assert 8.0 <= (retry_after_seconds(in_ten) or 0.0) <= 10.0
    past = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert retry_after_seconds(past) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "Mon, 99 Foo"])
def test_unreadable_values_give_none(value: object) -> None:
    assert retry_after_seconds(value) is None
