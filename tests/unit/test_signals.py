"""Raw account records into validated signals: renewal countdowns, missing vs invalid data, error messages."""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from src.app.analysis import signals
from src.app.analysis.signals import (
    IDENTITY_FIELDS,
    REQUIRED_SIGNALS,
    AccountDataError,
    days_until,
    field_columns,
    identity_problems,
    parse_account,
    plain_identities,
    signals_from_record,
)

UTC_ZONE = ZoneInfo("UTC")
TOKYO = ZoneInfo("Asia/Tokyo")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)

RECORD: dict[str, Any] = {
    "account_id": "acct-0001",
    "name": "Northwind Logistics",
    "arr": 48000,
    "contract_end_date": "2026-12-24",
    "feature_adoption_rate": 0.62,
    "usage_trend": "stable",
    "login_frequency_days": 4,
    "days_since_last_interaction": 12,
    "stakeholder_engagement": "medium",
    "nps_score": 8,
    "invoice_payment_status": "current",
    "seats_utilization_rate": 0.84,
    "open_ticket_count": 2,
    "avg_ticket_sentiment": "neutral",
    "escalation_count_90_days": 0,
    "tickets": [{"subject": "Export help", "body": "How do I export?", "status": "open"}],
    "notes": "Quarterly check-in booked.",
}


def record(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(RECORD), **changes}


def data_error(raw: dict[str, Any]) -> AccountDataError:
    with pytest.raises(AccountDataError) as caught:
        signals_from_record(raw, now=NOW, tz=UTC_ZONE)
    return caught.value


@pytest.mark.parametrize(
    "end",
    [
        date(2026, 12, 24),
        "2026-12-24",
        datetime(2026, 12, 24, 0, 0),
        datetime(2026, 12, 24, 23, 59),
        "2026-12-24T23:59:00",
        datetime(2026, 12, 25, 8, 0, tzinfo=TOKYO),
        "2026-12-25T08:00:00+09:00",
        "2026-12-24T12:00:00Z",
    ],
)
def test_days_until_counts_calendar_days_in_the_time_zone(end: date | datetime | str) -> None:
    assert days_until(end, now=NOW, tz=UTC_ZONE) == 30


def test_days_until_past_dates_are_negative() -> None:
    assert days_until(date(2026, 11, 14), now=NOW, tz=UTC_ZONE) == -10
    assert days_until("2026-11-23", now=NOW, tz=UTC_ZONE) == -1
    assert days_until(date(2026, 11, 24), now=NOW, tz=UTC_ZONE) == 0


def test_days_until_unknown_end_is_none() -> None:
    assert days_until(None, now=NOW, tz=UTC_ZONE) is None


def test_days_until_rejects_unparsable_strings() -> None:
    with pytest.raises(ValueError):
        days_until("next spring", now=NOW, tz=UTC_ZONE)


@pytest.mark.parametrize(
    ("now", "tz", "expected"),
    [
        # 23:30 UTC on the 24th is already the 25th in Tokyo and still the 24th in Los Angeles.
        (datetime(2026, 11, 24, 23, 30, tzinfo=UTC), UTC_ZONE, 1),
        (datetime(2026, 11, 24, 23, 30, tzinfo=UTC), TOKYO, 0),
        (datetime(2026, 11, 24, 23, 30, tzinfo=UTC), LOS_ANGELES, 1),
        # 02:00 UTC on the 25th is still the 24th in Los Angeles.
        (datetime(2026, 11, 25, 2, 0, tzinfo=UTC), UTC_ZONE, 0),
        (datetime(2026, 11, 25, 2, 0, tzinfo=UTC), LOS_ANGELES, 1),
        # A naive `now` is read in the configured time zone.
        (datetime(2026, 11, 24, 23, 30), TOKYO, 1),
    ],
)
def test_days_until_depends_on_the_configured_time_zone_near_midnight(
    now: datetime, tz: ZoneInfo, expected: int
) -> None:
    assert days_until(date(2026, 11, 25), now=now, tz=tz) == expected


def test_naive_end_datetime_is_read_in_the_configured_zone() -> None:
    end = datetime(2026, 11, 25, 1, 0)
    now = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)  # 2026-11-25 05:00 in Tokyo
    assert days_until(end, now=now, tz=TOKYO) == 0
    assert days_until(end, now=now, tz=UTC_ZONE) == 1


def test_signals_from_a_valid_record() -> None:
    result = signals_from_record(record(), now=NOW, tz=UTC_ZONE)
    assert result.feature_adoption_rate == 0.62
    assert result.usage_trend == "stable"
    assert result.open_ticket_count == 2
    assert result.days_to_renewal == 30


def test_days_to_renewal_follows_the_time_zone() -> None:
    raw = record(contract_end_date="2026-11-25")
    late = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)
    assert signals_from_record(raw, now=late, tz=UTC_ZONE).days_to_renewal == 1
    assert signals_from_record(raw, now=late, tz=TOKYO).days_to_renewal == 0


def test_explicit_days_to_renewal_wins_over_contract_end_date() -> None:
    assert signals_from_record(record(days_to_renewal=5), now=NOW, tz=UTC_ZONE).days_to_renewal == 5


def test_no_contract_end_date_means_unknown_renewal() -> None:
    assert signals_from_record(record(contract_end_date=None), now=NOW, tz=UTC_ZONE).days_to_renewal is None


def test_unknown_keys_are_ignored_and_none_means_absent() -> None:
    raw = record(favourite_colour="teal", open_ticket_count=None, avg_ticket_sentiment=None, nps_score=None)
    result = signals_from_record(raw, now=NOW, tz=UTC_ZONE)
    assert result.open_ticket_count == 0
    assert result.avg_ticket_sentiment == "neutral"
    assert result.nps_score is None


def test_required_signals() -> None:
    assert set(REQUIRED_SIGNALS) == {
        "feature_adoption_rate",
        "usage_trend",
        "stakeholder_engagement",
        "invoice_payment_status",
        "seats_utilization_rate",
    }


@pytest.mark.parametrize("field", sorted(REQUIRED_SIGNALS))
@pytest.mark.parametrize("how", ["absent", "none"])
def test_missing_required_signal_is_insufficient_data(field: str, how: str) -> None:
    raw = record()
    if how == "absent":
        del raw[field]
    else:
        raw[field] = None
    error = data_error(raw)
    assert error.kind == "insufficient_data"
    assert error.account_id == "acct-0001"
    assert error.problems == [f"missing required signal: {field}"]
    assert f"missing required signal: {field}" in str(error)
    assert "acct-0001" in str(error)
    assert "insufficient data" in str(error)


def test_out_of_range_value_is_invalid_data_naming_field_and_value() -> None:
    error = data_error(record(feature_adoption_rate=65))
    assert error.kind == "invalid_data"
    assert error.problems == ["feature_adoption_rate=65 is out of range (must be 0..1)"]
    assert "feature_adoption_rate=65 is out of range (must be 0..1)" in str(error)
    assert isinstance(error, ValueError)


def test_unknown_choice_lists_the_allowed_values() -> None:
    error = data_error(record(usage_trend="sideways"))
    assert error.kind == "invalid_data"
    assert error.problems == ["usage_trend='sideways' is not one of growing, stable, declining, inactive"]


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"login_frequency_days": -3}, "login_frequency_days=-3 is out of range (must be >= 0)"),
        ({"nps_score": 11}, "nps_score=11 is out of range (must be 0..10)"),
        ({"seats_utilization_rate": 2.5}, "seats_utilization_rate=2.5 is out of range (must be 0..2)"),
        ({"tam_health_rag": "PURPLE"}, "tam_health_rag='PURPLE' is not one of GREEN, AMBER, RED"),
        (
            {"open_ticket_count": "many"},
            "open_ticket_count='many' is invalid: Input should be a valid integer",
        ),
        ({"contract_end_date": "someday"}, "contract_end_date='someday' is not a valid ISO date"),
        ({"contract_end_date": 20261224}, "contract_end_date=20261224 is not a valid ISO date"),
    ],
)
def test_invalid_values_are_named(changes: dict[str, Any], problem: str) -> None:
    error = data_error(record(**changes))
    assert error.kind == "invalid_data"
    assert len(error.problems) == 1
    assert error.problems[0].startswith(problem)


def test_every_invalid_field_is_listed() -> None:
    error = data_error(record(feature_adoption_rate=65, usage_trend="sideways", nps_score=-1))
    assert error.kind == "invalid_data"
    assert len(error.problems) == 3
    for field in ("feature_adoption_rate=65", "usage_trend='sideways'", "nps_score=-1"):
        assert field in str(error)


def test_missing_and_invalid_together_is_insufficient_and_lists_both() -> None:
    raw = record(usage_trend="sideways")
    del raw["invoice_payment_status"]
    error = data_error(raw)
    assert error.kind == "insufficient_data"
    assert error.problems == [
        "missing required signal: invoice_payment_status",
        "usage_trend='sideways' is not one of growing, stable, declining, inactive",
    ]


def test_long_offending_values_are_truncated() -> None:
    error = data_error(record(usage_trend="x" * 500))
    assert len(error.problems[0]) < 200
    assert "..." in error.problems[0]


def test_error_without_account_id_says_so() -> None:
    raw = record(feature_adoption_rate=2)
    del raw["account_id"]
    assert data_error(raw).account_id == "<missing account_id>"


@pytest.mark.parametrize(
    "changes",
    [{}, {"feature_adoption_rate": 65}, {"invoice_payment_status": None}, {"contract_end_date": "bad"}],
)
def test_input_record_is_never_mutated(changes: dict[str, Any]) -> None:
    raw = record(**changes)
    snapshot = copy.deepcopy(raw)
    try:
        signals_from_record(raw, now=NOW, tz=UTC_ZONE)
    except AccountDataError:
        pass
    assert raw == snapshot
    assert "days_to_renewal" not in raw


def test_parse_account_validates_identity_and_detail() -> None:
    account = parse_account(record())
    assert account.account_id == "acct-0001"
    assert account.name == "Northwind Logistics"
    assert account.contract_end_date == date(2026, 12, 24)
    assert account.tickets[0].subject == "Export help"


def test_parse_account_names_each_invalid_field() -> None:
    raw = record(arr=-5, tickets=[{"subject": "x", "sentiment": "furious"}], seats_purchased="lots")
    with pytest.raises(AccountDataError) as caught:
        parse_account(raw)
    error = caught.value
    assert error.kind == "invalid_data"
    assert error.account_id == "acct-0001"
    assert "arr=-5 is out of range (must be >= 0)" in error.problems
    assert "tickets[0].sentiment='furious' is not one of positive, neutral, negative, critical" in error.problems
    assert any(problem.startswith("seats_purchased='lots' is invalid") for problem in error.problems)


def test_parse_account_reports_missing_identity() -> None:
    raw = record()
    del raw["account_id"], raw["name"]
    with pytest.raises(AccountDataError) as caught:
        parse_account(raw)
    assert caught.value.account_id == "<missing account_id>"
    assert caught.value.problems == ["missing required field: account_id", "missing required field: name"]


_IDENTITY_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 2**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "x" * 201, "x" * 501, "2026-12-24", "2026-02-30", "20261224", "2026-12-24T10:00:00", "١٢"]),
    st.lists(st.integers(), max_size=2),
)


@given(
    st.dictionaries(
        st.sampled_from(
            ["account_id", "name", "arr", "plan", "status", "rep_email", "ae_email", "chat_space"]
            + ["contract_end_date", "seats_purchased", "seats_active", "notes"]
        ),
        _IDENTITY_VALUES,
    ),
    st.sampled_from(["acct-1", "", "x" * 201]),
    st.sampled_from(["Acme", ""]),
)
def test_an_identity_called_plainly_valid_is_one_pydantic_finds_nothing_wrong_with(
    record: dict[str, Any], account_id: str, name: str
) -> None:
    full = {"account_id": account_id, "name": name, **record}
    [plain] = plain_identities([full])
    if plain:
        assert identity_problems(full) == []
    assert plain_identities([RECORD, full, RECORD]) == [True, plain, True]


def test_a_typical_record_has_a_plain_identity_and_a_bad_date_does_not() -> None:
    bad = [{**RECORD, "contract_end_date": "2026-02-30"}, {**RECORD, "arr": "lots"}, {**RECORD, "plan": None}]
    assert plain_identities([RECORD, *bad, {"account_id": "a", "name": "A"}]) == [True, False, False, False, True]


def test_the_plain_identity_check_covers_every_identity_field() -> None:
    assert {name for name, *_ in signals._IDENTITY_CHECKS} == set(IDENTITY_FIELDS)


_COLUMN_FIELDS = ["a", "b", "c"]
_COLUMN_RECORDS = st.one_of(
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.one_of(st.none(), st.integers())),
    st.builds(lambda fields: MappingProxyType(fields), st.dictionaries(st.sampled_from(["a", "b"]), st.integers())),
    st.builds(lambda fields: defaultdict(int, fields), st.dictionaries(st.sampled_from(["a", "c"]), st.integers())),
)


@given(st.lists(_COLUMN_RECORDS, max_size=8), st.lists(st.sampled_from(_COLUMN_FIELDS), min_size=1, max_size=3))
def test_field_columns_read_what_get_reads(records: list[Mapping[str, Any]], names: list[str]) -> None:
    before = [dict(record) for record in records]
    columns = field_columns(records, names)
    assert {name: list(column) for name, column in columns.items()} == {
        name: [record.get(name) for record in records] for name in names
    }
    assert [dict(record) for record in records] == before  # a defaultdict gains no key


def test_field_columns_of_records_holding_every_field_alike() -> None:
    records = [{"a": 1, "b": None, "c": "x"}, {"c": "y", "b": 2, "a": 3}]
    assert field_columns(records, ["c", "a", "z"]) == {"c": ("x", "y"), "a": (1, 3), "z": [None, None]}


_NEAR_PLAIN = [10**400, 2**53, 2**53 - 1, 2.0**53, -0.0, -1, -0.5, 0, float("nan"), float("inf"), True, False]
_TRICKY_IDENTITY_VALUES = st.one_of(
    st.sampled_from([*_NEAR_PLAIN, "", "2026-1-05", " 2026-12-24", "2026-02-30", date(2026, 12, 24)]),
    _IDENTITY_VALUES,
)
_PLAIN_IDENTITY_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "account_id": st.one_of(st.text(min_size=1, max_size=8), st.just("x" * 200)),
    "name": st.one_of(st.text(min_size=1, max_size=8), st.just("x" * 500)),
    "arr": st.one_of(st.integers(0, 2**53 - 1), st.floats(0, 2**53, exclude_max=True)),
    "plan": st.text(max_size=4),
    "status": st.text(max_size=4),
    "rep_email": st.one_of(st.none(), st.text(max_size=4)),
    "ae_email": st.one_of(st.none(), st.text(max_size=4)),
    "chat_space": st.one_of(st.none(), st.text(max_size=4)),
    "seats_purchased": st.one_of(st.none(), st.integers(0, 2**70)),
    "seats_active": st.one_of(st.none(), st.integers(0, 2**70)),
    "contract_end_date": st.one_of(st.none(), st.sampled_from(["2026-12-24", "2027-02-28", "2028-02-29"])),
}


@st.composite
def _identity_pages(draw: st.DrawFn) -> list[Mapping[str, Any]]:
    """A page whose fields are mostly plain, each now and then tricky or absent in some record."""
    tricky = {name: draw(st.booleans()) for name in _PLAIN_IDENTITY_VALUES}
    page: list[Mapping[str, Any]] = []
    for _ in range(draw(st.integers(1, 6))):
        record: dict[str, Any] = {}
        for name, plain in _PLAIN_IDENTITY_VALUES.items():
            if tricky[name] and draw(st.integers(0, 3)) == 0:
                if draw(st.booleans()):
                    record[name] = draw(_TRICKY_IDENTITY_VALUES)
            else:
                record[name] = draw(plain)
        page.append(MappingProxyType(record) if draw(st.integers(0, 9)) == 0 else record)
    return page


@settings(max_examples=400)
@given(_identity_pages())
def test_plain_identities_decide_as_each_value_checked_on_its_own(page: list[Mapping[str, Any]]) -> None:
    each = [
        all(check(record.get(name, default)) for name, default, check, _ in signals._IDENTITY_CHECKS) for record in page
    ]
    assert plain_identities(page) == each


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("arr", [1.0, float("nan"), 2**60]),
        ("arr", [float("nan"), 5]),
        ("arr", [1.0, float("nan"), 5]),
        ("arr", [-0.5, 3]),
        ("arr", [10**400, 1.5]),
        ("arr", [1.5, float("inf")]),
        ("arr", [True, 2]),
        ("arr", [2**53, 1]),
        ("seats_active", [None, 0, -1]),
        ("seats_active", [False, 3]),
        ("account_id", ["a", ""]),
        ("name", ["a", "x" * 501]),
        ("contract_end_date", [None, "2026-12-24", "2026-02-30"]),
        ("contract_end_date", ["2026-12-24", date(2026, 12, 24)]),
        ("plan", ["a", None]),
    ],
)
def test_a_column_with_one_bad_value_is_checked_value_by_value(name: str, values: list[Any]) -> None:
    _, _, check, all_pass = next(checks for checks in signals._IDENTITY_CHECKS if checks[0] == name)
    assert not all_pass(values)
    assert plain_identities([{**RECORD, name: value} for value in values]) == [check(value) for value in values]
