"""One reading of an HTTP `Retry-After` value, shared by every adapter that retries."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime


def retry_after_seconds(value: object) -> float | None:
    """Seconds a `Retry-After` value asks to wait (delta-seconds or an HTTP date), at least 0; None if unreadable."""
    if value is None or value == "":
        return None
    try:
        return max(float(str(value)), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(str(value)).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None
