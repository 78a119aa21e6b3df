from __future__ import annotations

from src.app.agents.customer_success.dispatch import ALERT_STEP, page_tasks
from src.app.cli.cluster import worker_argv, worker_concurrency
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


def test_a_worker_runs_two_tasks_per_llm_slot_unless_told() -> None:
    assert worker_concurrency(CSMSettings(llm_concurrency=3), None) == 6
    assert worker_concurrency(CSMSettings(llm_concurrency=3), 5) == 5


def test_a_scan_s_page_tasks_and_alert_step_have_keys_of_their_own() -> None:
    pages = page_tasks([(None, "a-2"), ("a-2", None)])
    assert [task_key(task) for task in pages] == ["health_scan:page:000000", "health_scan:page:000001"]
    assert pages[1]["page"] == ["a-2", None] and pages[1]["summary"]
    assert task_key(ALERT_STEP) == "health_scan:alerts"
