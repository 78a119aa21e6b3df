"""Turn raw, possibly malformed account records into validated signals and records, naming each bad field."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError, create_model
from pydantic_core import ErrorDetails

from src.app.schemas import AccountRecord, CSMHealthSignals

DataErrorKind = Literal["insufficient_data", "invalid_data"]

SIGNAL_FIELDS: tuple[str, ...] = tuple(CSMHealthSignals.model_fields)
"""The raw signal fields an account record may carry."""

REQUIRED_SIGNALS: tuple[str, ...] = tuple(
    name for name, field in CSMHealthSignals.model_fields.items() if field.is_required()
)
"""Signals without which no score is computed (the account gets an "insufficient data" outcome)."""

DETAIL_FIELDS: tuple[str, ...] = ("features_available", "feature_usage", "usage_history", "tickets", "notes")
"""`AccountRecord` fields that describe an account's activity in detail: no score or churn alert reads them."""

IDENTITY_FIELDS: tuple[str, ...] = tuple(name for name in AccountRecord.model_fields if name not in DETAIL_FIELDS)
"""`AccountRecord` fields that identify and route an account (name, ARR, plan, owners, seats, contract end)."""

_BOUND_SYMBOLS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}

MAX_VALUE_REPR = 80
"""Offending values are quoted in error messages up to this many characters."""


class AccountDataError(ValueError):
    """An account record that cannot be used: required signals are missing or fields are invalid."""

    def __init__(self, account_id: str, problems: Sequence[str], *, kind: DataErrorKind) -> None:
        self.account_id = account_id
        self.problems = list(problems)
        self.kind: DataErrorKind = kind
        label = "insufficient data" if kind == "insufficient_data" else "invalid data"
        super().__init__(f"account {account_id} has {label}: " + "; ".join(self.problems))


def days_until(end: date | datetime | str | None, *, now: datetime, tz: ZoneInfo) -> int | None:
    """Whole calendar days from `now` to `end`, both as dates in `tz`; negative when `end` is past.

    Date-only values are that local date, naive datetimes (and a naive `now`) are read in `tz`, aware ones
    are converted to `tz`, and strings are parsed as ISO 8601. Raises ValueError for an unparsable string.
    """
    if end is None:
        return None
    return (_local_date(end, tz) - _local_today(now, tz)).days


@lru_cache(maxsize=64)
def _local_today(now: datetime, tz: ZoneInfo) -> date:
    """The date of `now` in `tz`, cached because a scan asks for it once per account."""
    return _local_date(now, tz)


def _local_date(value: date | datetime | str, tz: ZoneInfo) -> date:
    if isinstance(value, str):
        text = value.strip()
        value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=tz) if value.tzinfo is None else value.astimezone(tz)
        return aware.date()
    return value


def signals_from_record(record: Mapping[str, Any], *, now: datetime, tz: ZoneInfo) -> CSMHealthSignals:
    """Validate the signal fields of a raw account record, deriving `days_to_renewal` from its contract end.

    Unknown keys are ignored and a None value counts as absent. The record is never modified.

    Raises:
        AccountDataError: kind "insufficient_data" when a required signal is missing (any invalid fields are
            listed too), else kind "invalid_data" listing every invalid field with its value.
    """
    values = {name: value for name in SIGNAL_FIELDS if (value := record.get(name)) is not None}
    problems = _derive_days_to_renewal(values, record, now=now, tz=tz)
    missing = [f"missing required signal: {name}" for name in REQUIRED_SIGNALS if name not in values]
    try:
        signals = CSMHealthSignals.model_validate(values)
    except ValidationError as error:
        details = error.errors(include_url=False)
        problems += [_describe(CSMHealthSignals, detail) for detail in details if detail["type"] != "missing"]
    else:
        if not problems:
            return signals
    if missing:
        raise AccountDataError(_account_id(record), missing + problems, kind="insufficient_data")
    raise AccountDataError(_account_id(record), problems, kind="invalid_data")


def observed_signals(record: Mapping[str, Any], *, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """The signal fields a raw record carries, each validated, any of them missing; `days_to_renewal` derived.

    What a scorecard scores when required signals are missing: it weighs what was observed (its coverage) and
    decides by its coverage floor whether that is enough. A None value counts as absent.

    Raises:
        AccountDataError: kind "invalid_data", listing every invalid field with its value.
    """
    values = {name: value for name in SIGNAL_FIELDS if (value := record.get(name)) is not None}
    problems = _derive_days_to_renewal(values, record, now=now, tz=tz)
    try:
        observed: dict[str, Any] = OPTIONAL_SIGNALS.model_validate(values).model_dump(exclude_none=True)
    except ValidationError as error:
        problems += describe_validation_error(CSMHealthSignals, error)
    if problems:
        raise AccountDataError(_account_id(record), problems, kind="invalid_data")
    return observed


def _optional_signals_model() -> type[BaseModel]:
    """`CSMHealthSignals` with every field optional but every constraint kept (None means missing)."""
    fields: dict[str, Any] = {}
    for name, info in CSMHealthSignals.model_fields.items():
        annotation: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        fields[name] = (annotation | None, None)
    return create_model("OptionalSignals", **fields)


OPTIONAL_SIGNALS = _optional_signals_model()
"""`CSMHealthSignals` with every signal optional: what a scorecard reads when some signals are missing."""


def _derive_days_to_renewal(
    values: dict[str, Any], record: Mapping[str, Any], *, now: datetime, tz: ZoneInfo
) -> list[str]:
    end = record.get("contract_end_date")
    if "days_to_renewal" in values or end is None:
        return []
    try:
        values["days_to_renewal"] = days_until(end, now=now, tz=tz)
    except (TypeError, ValueError):
        return [f"contract_end_date={_quote(end)} is not a valid ISO date"]
    return []


ESSENTIAL_IDENTITY: tuple[str, ...] = ("account_id", "name")
"""Identity fields without which an account cannot be scored, alerted or drafted; any other bad field is dropped."""


EXACT_INT = 2**53
"""Integers beyond this are not exact as float64 (a value past it is never plainly valid)."""


@lru_cache(maxsize=4096)
def _plain_date(text: str) -> bool:
    """Whether `text` is a valid calendar date written `YYYY-MM-DD` (a book's accounts share few end dates)."""
    if len(text) != 10 or text[4] != "-" or text[7] != "-" or not (text[:4] + text[5:7] + text[8:]).isdigit():
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _text(value: Any) -> bool:
    return type(value) is str


def _optional_text(value: Any) -> bool:
    return value is None or type(value) is str


def _count(value: Any) -> bool:
    return value is None or (type(value) is int and value >= 0)


def _all_texts_up_to(longest: int) -> Callable[[Sequence[Any]], bool]:
    def all_texts(values: Sequence[Any]) -> bool:
        return set(map(type, values)) == {str} and min(map(len, values)) > 0 and max(map(len, values)) <= longest

    return all_texts


def _all_texts(values: Sequence[Any]) -> bool:
    return set(map(type, values)) <= {str}


def _all_optional_texts(values: Sequence[Any]) -> bool:
    return set(map(type, values)) <= {str, type(None)}


def _all_amounts(values: Sequence[Any]) -> bool:
    """Numbers in [0, 2**53), none NaN: a NaN would make their sum NaN; without one, `min` and `max` see them all."""
    if not set(map(type, values)) <= {int, float}:
        return False
    try:
        total = sum(values)
    except OverflowError:  # an integer beyond any float, among floats
        return False
    return bool(total == total) and min(values) >= 0 and max(values) < EXACT_INT


def _all_counts(values: Sequence[Any]) -> bool:
    return set(map(type, values)) <= {int, type(None)} and min(filter(None, values), default=0) >= 0


def _all_plain_dates(values: Sequence[Any]) -> bool:
    return set(map(type, values)) <= {str, type(None)} and all(map(_plain_date, set(values) - {None}))


_IDENTITY_CHECKS: tuple[tuple[str, Any, Callable[[Any], bool], Callable[[Sequence[Any]], bool]], ...] = (
    # (field, value when absent, the plain-validity check of a value, whether a page's values all pass it)
    ("account_id", None, lambda v: type(v) is str and 0 < len(v) <= 200, _all_texts_up_to(200)),
    ("name", None, lambda v: type(v) is str and 0 < len(v) <= 500, _all_texts_up_to(500)),
    ("arr", 0, lambda v: type(v) in (int, float) and 0 <= v < EXACT_INT, _all_amounts),
    ("plan", "", _text, _all_texts),
    ("status", "", _text, _all_texts),
    ("rep_email", None, _optional_text, _all_optional_texts),
    ("ae_email", None, _optional_text, _all_optional_texts),
    ("chat_space", None, _optional_text, _all_optional_texts),
    ("seats_purchased", None, _count, _all_counts),
    ("seats_active", None, _count, _all_counts),
    ("contract_end_date", None, lambda v: v is None or (type(v) is str and _plain_date(v)), _all_plain_dates),
)
_IDENTITY_DEFAULTS: dict[str, Any] = {name: default for name, default, _, _ in _IDENTITY_CHECKS}


def field_columns(
    records: Sequence[Mapping[str, Any]], names: Sequence[str], defaults: Mapping[str, Any] | None = None
) -> dict[str, Sequence[Any]]:
    """Each named field's values over the records, as `record.get(name, defaults.get(name))` reads them.

    When the records are plain dicts holding the same fields as the first, those fields are read with one
    `itemgetter` call per record rather than one `get` per field and record.
    """
    defaults = defaults or {}
    held = [name for name in names if records and name in records[0]]
    columns: dict[str, Sequence[Any]] = {}
    if len(held) > 1 and set(map(type, records)) == {dict}:
        try:
            rows = list(map(itemgetter(*held), records))
        except KeyError:  # a record lacks a field the first one has
            pass
        else:
            columns = dict(zip(held, zip(*rows, strict=True), strict=True))
    for name in names:
        if name not in columns:
            default = defaults.get(name)
            columns[name] = [record.get(name, default) for record in records]
    return {name: columns[name] for name in names}


def plain_identities(records: Sequence[Mapping[str, Any]]) -> list[bool]:
    """Per record, whether its identity is plainly valid, decided without pydantic, a page of records at once.

    True only where `read_identity` finds nothing wrong: ids and names of the right length, a non-negative number
    for ARR, text for plan and status, text or nothing for the owners, counts for seats and a `YYYY-MM-DD` date for
    the contract end. False means "not sure": `identity_problems` decides, and names what is wrong. A field is
    checked in a few passes over the page's values, and value by value only when some value fails.
    """
    plain = [True] * len(records)
    columns = field_columns(records, list(_IDENTITY_DEFAULTS), _IDENTITY_DEFAULTS)
    for name, _, check, all_pass in _IDENTITY_CHECKS:
        values = columns[name]
        if values and not all_pass(values):
            plain = [ok and check(value) for ok, value in zip(plain, values, strict=True)]
    return plain


def parse_identity(record: Mapping[str, Any]) -> AccountRecord:
    """Validate only a raw record's identity fields (`IDENTITY_FIELDS`); the detail fields are left empty.

    What a health scan and its alerts use of an account, checked without the cost of its tickets and history.
    An invalid field other than `ESSENTIAL_IDENTITY` (`arr: "lots"`) is left at its default: `identity_problems`
    names it.

    Raises:
        AccountDataError: kind "invalid_data", naming every invalid essential field and its value.
    """
    return read_identity(record)[0]


def identity_problems(record: Mapping[str, Any]) -> list[str]:
    """The invalid non-essential identity fields of a record, each named with its value (see `parse_identity`)."""
    return read_identity(record)[1]


def read_identity(record: Mapping[str, Any]) -> tuple[AccountRecord, list[str]]:
    """The record's identity with its invalid non-essential fields left at their defaults, and those problems."""
    identity = {name: record[name] for name in IDENTITY_FIELDS if name in record}
    try:
        return AccountRecord.model_validate(identity), []
    except ValidationError as error:
        details = error.errors(include_url=False)
    problems = [_describe(AccountRecord, detail) for detail in details]
    if any(detail["loc"][:1] and detail["loc"][0] in ESSENTIAL_IDENTITY for detail in details):
        raise AccountDataError(_account_id(record), problems, kind="invalid_data")
    bad = {detail["loc"][0] for detail in details if detail["loc"]}
    return parse_account({k: v for k, v in identity.items() if k not in bad}), problems


def parse_account(record: Mapping[str, Any]) -> AccountRecord:
    """Validate a raw record's identity and detail fields into an `AccountRecord`.

    Raises:
        AccountDataError: kind "invalid_data", naming every invalid field and its value.
    """
    try:
        return AccountRecord.model_validate(record)
    except ValidationError as error:
        problems = describe_validation_error(AccountRecord, error)
        raise AccountDataError(_account_id(record), problems, kind="invalid_data") from None


def describe_validation_error(model: type[BaseModel], error: ValidationError) -> list[str]:
    """One plain sentence per validation problem, naming the field and quoting the offending value."""
    return [_describe(model, detail) for detail in error.errors(include_url=False)]


def _describe(model: type[BaseModel], detail: ErrorDetails) -> str:
    field = _field_path(detail["loc"])
    kind = detail["type"]
    if kind == "missing":
        required = "signal" if model is CSMHealthSignals else "field"
        return f"missing required {required}: {field}"
    value = _quote(detail.get("input"))
    context = detail.get("ctx", {})
    if kind == "literal_error":
        allowed = str(context.get("expected", "")).replace(" or ", ", ").replace("'", "")
        return f"{field}={value} is not one of {allowed}"
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        return f"{field}={value} is out of range (must be {_allowed_range(model, detail)})"
    return f"{field}={value} is invalid: {detail['msg']}"


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path or "<record>"


def _allowed_range(model: type[BaseModel], detail: ErrorDetails) -> str:
    loc = detail["loc"]
    field = model.model_fields.get(str(loc[0])) if len(loc) == 1 else None
    bounds: dict[str, Any] = dict(detail.get("ctx", {}))
    for constraint in field.metadata if field is not None else ():
        bounds.update({key: getattr(constraint, key) for key in _BOUND_SYMBOLS if hasattr(constraint, key)})
    low, high = bounds.get("ge"), bounds.get("le")
    if low is not None and high is not None:
        return f"{low}..{high}"
    return " and ".join(f"{_BOUND_SYMBOLS[key]} {bound}" for key, bound in bounds.items() if key in _BOUND_SYMBOLS)


def _quote(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_VALUE_REPR else text[: MAX_VALUE_REPR - 3] + "..."


def _account_id(record: Mapping[str, Any]) -> str:
    account_id = record.get("account_id")
    return account_id if isinstance(account_id, str) and account_id else "<missing account_id>"
