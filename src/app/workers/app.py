"""The Celery app built from `CSM_*` settings: late acknowledgement, redelivery on worker loss, one queue.

`app` is built at import from the environment (nothing connects until a worker starts or a task is sent), so
Celery's own tooling works on it: `celery -A src.app.workers.app inspect active`, `... events`, `... purge`.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from src.app.config import CSMSettings

ACCOUNT_TASK = "csm.account_task"
"""The one task name: run one per-account task of a scheduled job and record its outcome on the run."""


def celery_config(settings: CSMSettings) -> dict[str, Any]:
    """Celery settings for `settings`: nothing lost (acks late, requeued on worker loss), nothing prefetched."""
    broker = settings.broker_url.get_secret_value() if settings.broker_url is not None else None
    config: dict[str, Any] = {
        "broker_url": broker,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": settings.worker_queue,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "include": ["src.app.workers.tasks"],
    }
    if broker is not None and broker.startswith(("redis://", "rediss://")):
        # A task unacknowledged this long is delivered again (keep it above the longest task); kombu looks for
        # such tasks every `unacked_restore_interval` s (its default 10 s x throttle 10 delays redelivery ~100 s).
        timeout = settings.broker_visibility_timeout_s
        config["broker_transport_options"] = {
            "visibility_timeout": timeout,
            "unacked_restore_interval": max(1, min(10, timeout // 10)),
            "unacked_restore_throttle": 1,
        }
    return config


def make_celery(settings: CSMSettings | None = None) -> Celery:
    """A Celery app configured from `settings` (default: the environment)."""
    celery = Celery("csm")
    celery.conf.update(celery_config(settings or CSMSettings()))
    return celery


app = make_celery()
