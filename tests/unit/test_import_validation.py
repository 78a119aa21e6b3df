"""`validate_row` checks a row in one validation, yet types and rejects it exactly as the scan's parsers do."""

from __future__ import annotations

from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import to_json
from typing_extensions import is_typeddict

from src.app.analysis.signals import AccountDataError, parse_account, signals_from_record
from src.app.cli.import_readers import RowProblem
from src.app.cli.importer import _ImportRow, validate_row
from src.app.schemas import Ticket
from src.app.tools.store.sql_tables import SerialisedRecord
from tests.conftest import NOW
from tests.support.fakes import HEALTHY, make_account

UTC_ZONE = ZoneInfo("UTC")
GOOD_VALUES: dict[str, list[Any]] = {
    "account_id": ["acct-1", "acct-2"],
    "name": ["Acme", "  Acme  "],
    "arr": [120_000, 120_000.5, "120000", "1e5", 0],
    "contract_end_date": ["2027-06-30", "2027-06-30T12:00:00", "2027-06-30T23:30:00-05:00", "2026-01-01"],
    "days_to_renewal": [None, 30, "30"],
    "usage_trend": ["growing", "stable"],
    "tam_health_rag": ["RED", None],
    "seats_purchased": [10, "10"],
    "features_available": [["sso"], []],
    "feature_usage": [{"sso": 3}, {"sso": "3"}],
    "usage_history": [[1, 2], ["1"]],
    "tickets": [[{"subject": "SSO?"}], [{"subject": "x", "sentiment": "negative", "extra": 1}]],
    "notes": ["fine"],
    "unknown_extra": ["kept", 5, [1]],
} | {name: [value, str(value), None] for name, value in HEALTHY.items()}
"""Valid values, many of them only after coercion ("10" is 10), and nulls."""
BAD_VALUES: dict[str, list[Any]] = {
    "account_id": ["", 7, "x" * 201],
    "name": ["", 3],
    "arr": [-5, "lots"],
    "contract_end_date": ["soon", 5, "2027-02-30"],
    "days_to_renewal": ["soon", 1.5],
    "usage_trend": ["sideways", 3],
    "tam_health_rag": ["red"],
    "seats_purchased": [-1, 2.5],
    "features_available": ["sso", [1]],
    "feature_usage": [{"sso": "x"}, []],
    "usage_history": [[1.5], "1"],
    "tickets": [[{"sentiment": "angry"}], [{"status": 3}], ["x"], {}],
    "notes": [5],
} | {name: ["", "lots", -1, 1.5, 3, True, [], {}] for name in HEALTHY}
"""Values some parser refuses."""


def values(table: dict[str, list[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Some of the fields, each with one of its values."""
    return st.fixed_dictionaries({}, optional={name: st.sampled_from(options) for name, options in table.items()})


def reference(record: dict[str, Any]) -> dict[str, Any] | list[str]:
    """What the import made of a row before: each parser in turn, every problem once, typed values in place."""
    problems: list[str] = []
    typed: dict[str, Any] = {}
    for check in (lambda: parse_account(record), lambda: signals_from_record(record, now=NOW, tz=UTC_ZONE)):
        try:
            typed |= check().model_dump(mode="json", exclude_unset=True)
        except AccountDataError as error:
            problems += [p for p in error.problems if p not in problems]
    return problems or {key: typed.get(key, value) for key, value in record.items()}


@settings(max_examples=600, deadline=None)
@given(
    good=values(GOOD_VALUES),
    bad=values(BAD_VALUES) | st.just({}),
    dropped=st.sets(st.sampled_from(["account_id", "name", "contract_end_date", *HEALTHY]), max_size=1),
)
def test_one_validation_types_and_rejects_rows_as_the_parsers_do(
    good: dict[str, Any], bad: dict[str, Any], dropped: set[str]
) -> None:
    record = {**make_account("acct-1", HEALTHY), **good, **bad}
    for name in dropped:
        record.pop(name, None)
    result = validate_row(7, record, now=NOW, tz=UTC_ZONE)
    expected = reference(record)
    if isinstance(expected, list):
        assert isinstance(result, RowProblem) and result.message == "; ".join(expected)
    else:
        assert not isinstance(result, RowProblem), result
        assert list(result.items()) == list(expected.items())
        if isinstance(result, SerialisedRecord):  # the JSON the store would have made of the row
            assert result.json == to_json(dict(result)).decode()


def _json_native(annotation: Any) -> bool:
    """Whether a field of this type holds a JSON value as validated (text, numbers, null, lists and maps of them)."""
    if annotation in (str, int, float, bool, type(None)):
        return True
    if is_typeddict(annotation):
        return all(_json_native(argument) for argument in get_type_hints(annotation).values())
    if get_origin(annotation) is Literal:
        return all(isinstance(value, str | int | float | bool) for value in get_args(annotation))
    if get_origin(annotation) in (list, dict, Union, UnionType):
        return all(_json_native(argument) for argument in get_args(annotation))
    return False


def test_every_field_validation_types_is_a_json_value_but_the_date_it_serialises() -> None:
    serialised = {name for name, field in _ImportRow.model_fields.items() if not _json_native(field.annotation)}
    assert serialised == {"contract_end_date"}


def test_validation_types_tickets_as_the_ticket_model_does() -> None:
    [field] = [field for name, field in _ImportRow.model_fields.items() if name == "tickets"]
    [ticket_fields] = get_args(field.annotation)
    assert get_type_hints(ticket_fields) == {name: field.annotation for name, field in Ticket.model_fields.items()}
    assert Ticket.model_config.get("extra") == "ignore" and not ticket_fields.__required_keys__


def test_validation_by_the_fields_typed_dict_knows_every_field_by_its_name() -> None:
    assert all(field.alias is None and field.validation_alias is None for field in _ImportRow.model_fields.values())
