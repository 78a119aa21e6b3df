from __future__ import annotations

import builtins
import sys
from typing import Any

import pytest

from src.app.agents.base import AgentRegistration
from src.app.agents.customer_success.agent import CustomerSuccessAgent
from src.app.agents.customer_success.scheduler import CSMScheduler


def make_scheduler(**kwargs: Any) -> CSMScheduler:
    reg = AgentRegistration(agent_id="csm-test", name="CustomerSuccess", version="1.0", capabilities=[])
    return CSMScheduler(csm_agent=CustomerSuccessAgent(registration=reg, llm_service=object()), **kwargs)


async def test_three_jobs_with_their_triggers_and_grace_times_inside_a_running_loop() -> None:
    sched = make_scheduler(timezone="Europe/Paris")
    assert sched.start() is True
    try:
        jobs = {job.id: job for job in sched._scheduler.get_jobs()}
        assert set(jobs) == {"csm_daily_health_scan", "csm_daily_contract_check", "csm_quarterly_qbr"}
        fields = {name: {f.name: str(f) for f in job.trigger.fields} for name, job in jobs.items()}
        assert (fields["csm_daily_health_scan"]["hour"], fields["csm_daily_health_scan"]["minute"]) == (
            "7",
            "0",
        )
        assert (fields["csm_daily_contract_check"]["hour"], fields["csm_daily_contract_check"]["minute"]) == (
            "8",
            "0",
        )
        qbr = fields["csm_quarterly_qbr"]
        assert (qbr["month"], qbr["day"], qbr["hour"], qbr["minute"]) == ("1,4,7,10", "1", "4", "0")
        assert {n: j.misfire_grace_time for n, j in jobs.items()} == {
            "csm_daily_health_scan": 3600,
            "csm_daily_contract_check": 3600,
            "csm_quarterly_qbr": 7200,
        }
        assert all(j.coalesce and j.max_instances == 1 for j in jobs.values())
        assert all(str(j.trigger.timezone) == "Europe/Paris" for j in jobs.values())
        assert jobs["csm_quarterly_qbr"].next_run_time.month in (1, 4, 7, 10)
    finally:
        sched.stop()
    sched.stop()


def test_start_returns_false_without_apscheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.startswith("apscheduler")]:
        monkeypatch.delitem(sys.modules, name)
    real_import = builtins.__import__

    def hide_apscheduler(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("apscheduler"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", hide_apscheduler)
    sched = make_scheduler()
    assert sched.start() is False
    sched.stop()


def test_synchronous_start_uses_a_private_loop_that_stop_closes() -> None:
    sched = make_scheduler()
    assert sched.start() is True
    loop = sched._loop
    assert loop is not None and loop.is_running()
    assert len(sched.jobs()) == 3 and all(job["next_run_time"] for job in sched.jobs())
    sched.stop()
    assert loop.is_closed() and sched._thread is None
