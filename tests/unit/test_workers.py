from __future__ import annotations

from src.app.cli.cluster import worker_argv
from src.app.config import CSMSettings
from src.app.workers.app import celery_config
from src.app.workers.dispatch import task_key


def test_nothing_lost_settings_on_both_brokers() -> None:
    rabbit = celery_config(CSMSettings(broker_url="amqp://guest:guest@127.0.0.1:5672//", worker_queue="q1"))
    assert rabbit["task_acks_late"] and rabbit["task_reject_on_worker_lost"]
    assert rabbit["worker_prefetch_multiplier"] == 1 and rabbit["task_default_queue"] == "q1"
    assert "broker_transport_options" not in rabbit
    redis = celery_config(CSMSettings(broker_url="redis://127.0.0.1:6379/1", broker_visibility_timeout_s=30))
    assert redis["broker_transport_options"] == {
        "visibility_timeout": 30,
        "unacked_restore_interval": 3,
        "unacked_restore_throttle": 1,
    }


def test_worker_command_line() -> None:
    argv = worker_argv(concurrency=3, queues=["a", "b"], pool="threads", name="w1@%h", loglevel="INFO", events=True)
    assert argv[:7] == ["worker", "--pool", "threads", "--concurrency", "3", "--queues", "a,b"]
    assert "--task-events" in argv and "w1@%h" in argv


def test_task_key_names_type_account_period_and_trigger() -> None:
    task = {"type": "generate_qbr", "account_id": "acct-1", "period": "Q1 2027", "trigger": "quarterly"}
    assert task_key(task) == "generate_qbr:acct-1:Q1 2027:quarterly"
    assert task_key({"type": "check_expansion", "account_id": "acct-1"}) == "check_expansion:acct-1"
