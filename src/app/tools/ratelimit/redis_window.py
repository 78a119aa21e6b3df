"""`RedisPacer`: a `SharedPacer` on the `limits` library's moving window in Redis, one ledger per tenant.

`limits` answers yes or no atomically (a Lua script); the waiting is ours: a refused request sleeps until the
oldest entry of the full window expires, then asks again. A window that has room by the time its stats are read
(the entry that refused the hit expired between the two round trips) is asked again at once: `limits` reports
the reset of a window with no entry as a whole window from now, and sleeping on that cost a waiter up to a
second each time it arrived just before a turn. The Redis connection belongs to the event loop that made it, so
each loop gets its own limiter. redis is imported here, at module import: `limits` imports it on first use and
reads its `__version__`, which a second thread can see missing while the first is still importing.
"""

from __future__ import annotations

import asyncio
import random
import time
import weakref
from collections.abc import Sequence

import redis.asyncio  # noqa: F401 - imported whole before `limits` looks for it lazily (see below)
import structlog
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from src.app.tools.ratelimit.windows import Window

_log = structlog.get_logger(__name__)

MIN_WAIT_S = 0.005
MAX_WAIT_S = 1.0
WAKE_JITTER_S = 0.01
"""Waiters refused together wake within this much of the window's reset, in random order (one of them wins the
next hit). A jitter of up to 10 % of the wait pushed every delayed request later than it had to be, which a
cluster whose LLM slots exactly match the cap paid for in throughput."""


class RedisPacer:
    """Paces requests under `windows` for every process using the same Redis and `namespace`.

    `namespace` carries the tenant and the capability (`csm:acme:llm`), and `wait(key)` adds the counted thing
    (a channel, a token digest), so each tenant's limits are its own.
    """

    def __init__(self, url: str, *, namespace: str, windows: Sequence[Window]) -> None:
        if not windows:
            raise ValueError("RedisPacer needs at least one window")
        self._url = _async_url(url)
        self._namespace = namespace
        self._items: tuple[RateLimitItem, ...] = tuple(
            RateLimitItemPerSecond(window.amount, window.seconds) for window in windows
        )
        self._limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MovingWindowRateLimiter] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"RedisPacer(namespace={self._namespace!r}, items={[str(item) for item in self._items]})"

    async def wait(self, key: str = "") -> None:
        """Return once one more request fits in every window; refusals wait for the window to move.

        Every window is first waited on without taking a place, then all are taken at once: a place taken in one
        window and then held through a wait on another would be stamped earlier than the request leaves, and
        let the next request out less than that window apart. A place taken by a racer in between only sends
        this request round again (the places it did take make later requests wait longer, never shorter).
        """
        limiter = self._limiter()
        while True:
            for item in self._items:
                while not await limiter.test(item, self._namespace, key):
                    await self._until_moved(limiter, item, key)
            if await self._take_all(limiter, key):
                return

    async def _take_all(self, limiter: MovingWindowRateLimiter, key: str) -> bool:
        for item in self._items:
            if not await limiter.hit(item, self._namespace, key):
                return False
        return True

    async def _until_moved(self, limiter: MovingWindowRateLimiter, item: RateLimitItem, key: str) -> None:
        stats = await limiter.get_window_stats(item, self._namespace, key)
        if stats.remaining > 0:
            return  # the entry that refused the request left the window since: ask again at once
        delay = min(max(stats.reset_time - time.time(), MIN_WAIT_S), MAX_WAIT_S)
        await asyncio.sleep(delay + random.uniform(0, WAKE_JITTER_S))  # noqa: S311 - jitter, not crypto

    def _limiter(self) -> MovingWindowRateLimiter:
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            storage = RedisStorage(self._url, implementation="redispy")
            limiter = self._limiters[loop] = MovingWindowRateLimiter(storage)
        return limiter


def _async_url(url: str) -> str:
    """The `limits` async storage URL for a redis:// or rediss:// URL."""
    return url if url.startswith("async+") else f"async+{url}"
