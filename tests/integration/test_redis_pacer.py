"""The shared pacer against the machine's Redis: three event loops in threads, one cap between them."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

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
