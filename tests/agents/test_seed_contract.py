from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from src.app.agents.base import AgentRegistration
from src.app.agents.customer_success.agent import CustomerSuccessAgent
from src.app.analysis.health import CSMHealthScorer
from src.app.config import CSMSettings
from src.app.tools.store.sql import SQLStore
from tests.support.fakes import (
    AT_RISK,
    HEALTHY,
    RecordingChat,
    RecordingEvents,
    RecordingMail,
    ScriptedLLM,
    make_account,
)

ROOT = Path(__file__).resolve().parents[2]
UNKNOWN_MESSAGE = (
    "Unknown task type: 'unknown_type'. Supported: health_scan, generate_qbr, check_expansion, track_feature_adoption"
)
SEED_CHECK = """
import asyncio
from src.app.agents.customer_success.agent import CustomerSuccessAgent
from src.app.agents.customer_success.scheduler import CSMScheduler
from src.app.agents.base import AgentRegistration
reg = AgentRegistration(agent_id='csm-test', name='CustomerSuccess', version='1.0', capabilities=[])
agent = CustomerSuccessAgent(registration=reg, llm_service=object())
try:
    asyncio.run(agent.execute({'type': 'unknown_type'}, {}))
except ValueError as error:
    assert 'unknown_type' in str(error), error
    print('unknown:', error)
sched = CSMScheduler(csm_agent=agent)
print('started:', sched.start())
print('jobs:', sorted(job['id'] for job in sched.jobs()))
sched.stop()
sched.stop()
print('stopped')
"""


def registration() -> AgentRegistration:
    return AgentRegistration(agent_id="csm-test", name="CustomerSuccess", version="1.0", capabilities=[])


def test_seed_checks_pass_verbatim_in_a_fresh_interpreter(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", SEED_CHECK],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "CSM_DATA_DIR": str(tmp_path), "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    assert done.returncode == 0, done.stderr
    assert f"unknown: {UNKNOWN_MESSAGE}" in done.stdout
    assert "started: True" in done.stdout and "stopped" in done.stdout
    assert "jobs: ['csm_daily_contract_check', 'csm_daily_health_scan', 'csm_quarterly_qbr']" in done.stdout
    assert "Traceback" not in done.stderr


def test_registration_accepts_capability_names() -> None:
    reg = AgentRegistration(agent_id="x", name="n", version="1", capabilities=["health_scan", {"name": "qbr"}])
    assert [c.name for c in reg.capabilities] == ["health_scan", "qbr"]
    assert reg.max_concurrent_tasks >= 1 and reg.tags == [] and reg.description == ""


def test_construction_stores_collaborators_and_does_no_io(tmp_path: Path) -> None:
    settings = CSMSettings(data_dir=tmp_path / "never-created")
    mail, chat, events = RecordingMail(), RecordingChat(), RecordingEvents()
    agent = CustomerSuccessAgent(
        registration(),
        llm_service=object(),
        gmail_service=mail,
        chat_service=chat,
        event_bus=events,
        settings=settings,
    )
    assert agent._gmail_service is mail and agent._chat_service is chat and agent._event_bus is events
    assert agent._notion_csm is None and agent._health_scorer is None and agent._sales_agent is None
    assert agent.agent_id == "csm-test" and not (tmp_path / "never-created").exists()


@pytest.fixture
async def agent(tmp_path: Path):
    store = SQLStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    await store.upsert_accounts([make_account("a-ok", HEALTHY), make_account("a-risk", AT_RISK)])
    built = CustomerSuccessAgent(
        registration(),
        llm_service=ScriptedLLM(),
        health_scorer=CSMHealthScorer(),
        gmail_service=RecordingMail(),
        chat_service=RecordingChat(),
        event_bus=RecordingEvents(),
        settings=CSMSettings(data_dir=tmp_path),
        store=store,
    )
    yield built
    await store.aclose()


async def test_unknown_task_type_raises_value_error_naming_it(agent: CustomerSuccessAgent) -> None:
    with pytest.raises(ValueError) as caught:
        await agent.execute({"type": "unknown_type"}, {})
    assert str(caught.value) == UNKNOWN_MESSAGE


async def test_missing_scorer_fails_open_with_the_seed_message(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    agent = CustomerSuccessAgent(
        registration(), llm_service=ScriptedLLM(), settings=CSMSettings(data_dir=tmp_path), store=store
    )
    result = await agent.execute({"type": "health_scan"}, {})
    await store.aclose()
    assert result == {
        "task_type": "health_scan",
        "error": "CSMHealthScorer not configured",
        "confidence": "low",
        "partial": True,
    }


async def test_handler_errors_fail_open_and_never_raise(agent: CustomerSuccessAgent) -> None:
    result = await agent.execute({"type": "generate_qbr"}, {})
    assert result["partial"] is True and result["confidence"] == "low" and "account_id" in result["error"]
    missing = await agent.execute({"type": "check_expansion", "account_id": "nope"}, {})
    assert "not found" in missing["error"]


async def test_health_scan_result_is_json_safe_and_task_is_not_mutated(agent: CustomerSuccessAgent) -> None:
    import json

    task = {"type": "health_scan", "account_ids": ["a-risk"], "signals": {"nps_score": 0}}
    snapshot = json.dumps(task)
    result = await agent.execute(task, {})
    assert json.dumps(task) == snapshot
    json.dumps(result)
    assert result["health_score"]["account_id"] == "a-risk" and result["scanned_count"] == 1
    assert result["health_score"]["signal_breakdown"]["nps_score"] == 0
    assert isinstance(result["health_score"]["computed_at"], str)


async def test_dispatch_churn_alerts_uses_all_four_channels(agent: CustomerSuccessAgent) -> None:
    scan = await agent.execute({"type": "health_scan", "account_id": "a-risk"}, {})
    alert = await agent._dispatch_churn_alerts("a-risk", scan["health_score"], {}, None)
    assert alert.channels == {"notion": True, "event_bus": True, "email_alert": True, "chat_alert": True}


def test_extract_json_from_response_is_static() -> None:
    assert CustomerSuccessAgent._extract_json_from_response('Sure! ```json\n{"a": 1}\n``` done') == {"a": 1}
    assert CustomerSuccessAgent._extract_json_from_response(None) is None


async def test_invoke_tracks_status(agent: CustomerSuccessAgent) -> None:
    result = await agent.invoke({"type": "health_scan"})
    assert agent.tasks_completed == 1 and agent.status == "idle" and result["scanned_count"] == 2
    with pytest.raises(ValueError):
        await agent.invoke({"type": "bogus"})
    assert agent.tasks_failed == 1 and agent.status == "error"
