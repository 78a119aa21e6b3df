"""The shared pacer against the machine's Redis: three event loops share one cap; a turn is never slept past."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from types import SimpleNamespace

import pytest
from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.storage.redis import redispy
from limits.aio.strategies import MovingWindowRateLimiter

from src.app.tools.ratelimit import Window
from src.app.tools.ratelimit.redis_window import RedisPacer
from tests.support.celery_cluster import max_in_window
from tests.support.servers import REDIS_URL, require_redis


def test_three_loops_share_one_window() -> None:
    require_redis()
    namespace = f"csm:test-{uuid.uuid4().hex[:8]}:llm"
    admitted: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        pacer = RedisPacer(REDIS_URL, namespace=namespace, windows=(Window(4, 1),))

        async def run() -> None:
            async def one() -> None:
                await pacer.wait("model")
                with lock:
                    admitted.append(time.monotonic())

            await asyncio.gather(*(one() for _ in range(4)))

        asyncio.run(run())

    threads = [threading.Thread(target=client) for _ in range(3)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(admitted) == 12
    assert time.monotonic() - started >= 2.0  # 12 requests at 4 per second: three windows
    assert max_in_window(admitted, 0.8) <= 4  # admission stamps are taken after the await: allow their jitter


async def test_a_turn_that_comes_between_the_refusal_and_the_stats_is_taken_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_redis()
    pacer = RedisPacer(REDIS_URL, namespace=f"csm:test-{uuid.uuid4().hex[:8]}:llm", windows=(Window(1, 1),))
    now = time.time()
    # limits' clock as the round trips see it: the first request's test and hit at `now`; the second's test 1 ms
    # before its turn (refused) and its stats read 1 ms after it (the window is empty by then); later calls on time.
    scripted = iter([now, now, now + 0.999, now + 1.001])
    monkeypatch.setattr(redispy, "time", SimpleNamespace(time=lambda: next(scripted, time.time() + 1.002)))
    await pacer.wait("model")
    started = time.monotonic()
    await pacer.wait("model")
    assert time.monotonic() - started < 0.5  # not a second's sleep on the empty window's "reset"


async def test_a_request_held_by_the_cap_takes_its_per_second_place_when_it_leaves() -> None:
    """Two requests waiting on a full cap leave a whole second apart, as the per-second window says.

    The cap's places (2 per 3 s) were taken 0.5 s apart by earlier requests; both waiters are admitted by the
    per-second window long before the cap frees. Had either taken its per-second place then, the two would
    leave 0.5 s apart, as the cap's two places free up.
    """
    require_redis()
    namespace = f"csm:test-{uuid.uuid4().hex[:8]}:llm"
    pacer = RedisPacer(REDIS_URL, namespace=namespace, windows=(Window(1, 1), Window(2, 3)))
    earlier = MovingWindowRateLimiter(RedisStorage(f"async+{REDIS_URL}", implementation="redispy"))
    cap = RateLimitItemPerSecond(2, 3)
    assert await earlier.hit(cap, namespace, "model")
    await asyncio.sleep(0.5)
    assert await earlier.hit(cap, namespace, "model")
    admitted: list[float] = []

    async def one() -> None:
        await pacer.wait("model")
        admitted.append(time.monotonic())

    await asyncio.gather(one(), one())
    assert admitted[1] - admitted[0] >= 0.95
