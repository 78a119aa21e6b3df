from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from src.app.state import CSMState
from src.app.tasks import AdoptionTask, ExpansionTask, HealthScanTask, QBRTask, as_task, parse_task


def test_each_type_parses_to_its_model() -> None:
    assert isinstance(parse_task({"type": "health_scan"}), HealthScanTask)
    assert isinstance(parse_task({"type": "generate_qbr", "account_id": "a-1"}), QBRTask)
    assert isinstance(parse_task({"type": "check_expansion", "account_id": "a-1"}), ExpansionTask)
    assert isinstance(parse_task({"type": "track_feature_adoption", "account_id": "a-1"}), AdoptionTask)


def test_unknown_type_raises_the_seed_error() -> None:
    with pytest.raises(ValueError, match="Unknown task type: 'nightly'. Supported: health_scan"):
        parse_task({"type": "nightly"})


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"type": "generate_qbr"}, "Task 'generate_qbr' needs a non-empty 'account_id', got None"),
        ({"type": "check_expansion", "account_id": "  "}, "needs a non-empty 'account_id', got '  '"),
        ({"type": "generate_qbr", "account_id": "a", "period": ""}, "'period' must be a quarter label like 'Q3 2026'"),
        ({"type": "generate_qbr", "account_id": "a", "trigger": "whenever"}, "'trigger' must be one of quarterly"),
        ({"type": "health_scan", "summary": "maybe"}, "field 'summary'"),
        ({"type": "health_scan", "signals": {"account_id": "x"}}, "'signals' cannot set 'account_id'"),
    ],
)
def test_bad_fields_are_named(task: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_task(task)


def test_scope_period_and_extra_keys() -> None:
    scan = parse_task({"type": "health_scan", "account_ids": [1, "b"], "priority": "high"})
    assert isinstance(scan, HealthScanTask)
    assert scan.account_scope() == ["1", "b"]
    assert scan.as_dict() == {"type": "health_scan", "account_ids": ["1", "b"], "priority": "high"}
    assert HealthScanTask().account_scope() is None
    qbr = as_task({"type": "generate_qbr", "account_id": "a", "period": " Q3 2026 "}, QBRTask)
    assert qbr.resolved_period(datetime(2026, 12, 2, tzinfo=UTC), ZoneInfo("UTC")) == "Q3 2026"
    this_quarter = as_task({"type": "generate_qbr", "account_id": "a"}, QBRTask)
    # 23:30 UTC on 31 Dec is already 1 Jan in Tokyo: the quarter follows the configured zone.
    assert this_quarter.resolved_period(datetime(2026, 12, 31, 23, 30, tzinfo=UTC), ZoneInfo("Asia/Tokyo")) == "Q1 2027"
    with pytest.raises(TypeError, match="Expected a 'generate_qbr' task, got 'check_expansion'"):
        as_task({"type": "check_expansion", "account_id": "a"}, QBRTask)


def test_router_state_is_typed_and_studio_sees_the_fields() -> None:
    state = CSMState.model_validate({"task": {"type": "generate_qbr", "account_id": "a"}})
    assert isinstance(state.task, QBRTask)
    schema = CSMState.model_json_schema()
    qbr_fields = schema["$defs"]["QBRTask"]["properties"]
    assert {"account_id", "period", "trigger"} <= set(qbr_fields)
