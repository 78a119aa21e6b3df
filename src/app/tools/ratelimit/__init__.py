"""Request rates every worker shares: the `SharedPacer` Protocol and the windows a cap is enforced with.

In one process (`CSM_EXECUTOR=local`) each client paces itself with aiolimiter, as it always has. Across
Celery workers a cap only holds if every process counts against the same ledger: `redis_window.py` keeps it in
Redis with the `limits` library's moving window, keyed per tenant.
"""

from __future__ import annotations

from typing import Protocol

from src.app.config import CSMSettings
from src.app.tools.ratelimit.windows import (
    JITTER_MARGIN_S,
    Window,
    cap_windows,
    llm_windows,
    per_second_windows,
)

__all__ = [
    "JITTER_MARGIN_S",
    "SharedPacer",
    "Window",
    "cap_windows",
    "llm_windows",
    "per_second_windows",
    "shared_pacer",
]


class SharedPacer(Protocol):
    """Waits for a turn under a rate shared by every process of the tenant."""

    async def wait(self, key: str) -> None:
        """Return once one more request under `key` fits in every window of the rate."""
        ...


def shared_pacer(settings: CSMSettings, capability: str, windows: tuple[Window, ...]) -> SharedPacer | None:
    """The pacer every Celery worker of the tenant shares for `capability`; None with the local executor.

    Raises ValueError when Celery workers are configured without a Redis to share the limit in: each worker
    pacing itself would let N workers send N times the cap.
    """
    if settings.executor != "celery":
        return None
    url = settings.shared_limits_url
    if url is None:
        raise ValueError(
            f"CSM_EXECUTOR=celery shares the {capability} rate limit through Redis: set CSM_RATE_LIMIT_URL "
            "(or CSM_REDIS_URL, or use a redis:// CSM_BROKER_URL)"
        )
    from src.app.tools.ratelimit.redis_window import RedisPacer

    return RedisPacer(url, namespace=f"csm:{settings.tenant_id}:{capability}", windows=windows)
