"""The windows a request cap is enforced with: the cap itself, counted with a jitter margin, and its spread."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """At most `amount` requests in any `seconds`-long window (a moving window, not a calendar one)."""

    amount: int
    seconds: int


JITTER_MARGIN_S = 1
"""A cap's window is counted one second longer than the provider's: requests admitted exactly one window apart
still reach the provider in order even when the later one travels faster (network and scheduling jitter)."""


def cap_windows(amount: float, window_s: int) -> tuple[Window, ...]:
    """The windows that keep `amount` requests per `window_s` seconds under the cap as the provider counts it.

    The cap itself, counted over `window_s + 1` s (see `JITTER_MARGIN_S`), and a one-second window of the cap's
    per-second share, so the requests of a window are spread over it instead of leaving in one burst.
    """
    if amount <= 0 or window_s < 1:
        raise ValueError(f"a cap needs amount > 0 and window_s >= 1, got {amount!r} per {window_s!r} s")
    per_window = max(1, math.floor(amount))
    if window_s == 1:
        return (Window(per_window, 1),)
    per_second = max(1, math.ceil(amount / window_s))
    return (Window(per_second, 1), Window(per_window, window_s + JITTER_MARGIN_S))


def llm_windows(requests_per_min: float, window_s: int) -> tuple[Window, ...]:
    """The windows for an LLM provider's requests-per-minute cap, enforced by the provider over `window_s`."""
    return cap_windows(requests_per_min * window_s / 60, window_s)


def per_second_windows(rate_per_s: float) -> tuple[Window, ...]:
    """The window for a per-second rate (Notion's per-token rate, chat's per-channel rate)."""
    return (Window(max(1, math.floor(rate_per_s)), 1),)
