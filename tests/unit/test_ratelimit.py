from __future__ import annotations

import pytest

from src.app.config import CSMSettings
from src.app.context import llm_from_settings
from src.app.tools.ratelimit import Window, cap_windows, llm_windows, per_second_windows, shared_pacer


def test_a_cap_is_counted_one_second_longer_and_spread_over_its_window() -> None:
    assert llm_windows(600, 60) == (Window(10, 1), Window(600, 61))
    assert llm_windows(720, 2) == (Window(12, 1), Window(24, 3))
    assert cap_windows(5, 1) == (Window(5, 1),)
    assert per_second_windows(0.5) == (Window(1, 1),)
    with pytest.raises(ValueError, match="amount > 0"):
        cap_windows(0, 60)


def test_local_executor_keeps_the_in_process_pacer() -> None:
    settings = CSMSettings(llm_model="openai/x", llm_requests_per_min=600)
    assert settings.executor == "local"
    assert shared_pacer(settings, "llm", llm_windows(600, 60)) is None
    assert llm_from_settings(settings)._shared_pacer is None  # type: ignore[attr-defined]


def test_celery_executor_shares_limits_through_redis_per_tenant() -> None:
    settings = CSMSettings(
        executor="celery",
        broker_url="amqp://guest:guest@127.0.0.1:5672//",
        redis_url="redis://127.0.0.1:6379/3",
        tenant_id="acme",
        llm_model="openai/x",
        llm_requests_per_min=600,
    )
    assert settings.shared_limits_url == "redis://127.0.0.1:6379/3"
    pacer = llm_from_settings(settings)._shared_pacer  # type: ignore[attr-defined]
    assert "csm:acme:llm" in repr(pacer)


def test_celery_executor_without_redis_refuses_to_pace_alone() -> None:
    settings = CSMSettings(executor="celery", broker_url="amqp://guest:guest@127.0.0.1:5672//")
    assert settings.shared_limits_url is None
    with pytest.raises(ValueError, match="CSM_RATE_LIMIT_URL"):
        shared_pacer(settings, "llm", llm_windows(60, 60))
    redis_broker = CSMSettings(executor="celery", broker_url="redis://127.0.0.1:6379/1")
    assert redis_broker.shared_limits_url == "redis://127.0.0.1:6379/1"
