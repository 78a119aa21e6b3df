"""Churn history for a backtest: read CSV/JSON/JSONL rows, validate them, and report bad rows by line."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from src.app.analysis.derived_signals import tenure_days
from src.app.analysis.scorecard_model import as_number
from src.app.analysis.signals import OPTIONAL_SIGNALS, SIGNAL_FIELDS, days_until, describe_validation_error
from src.app.schemas import CSMHealthSignals

TRUE_WORDS = frozenset({"1", "true", "yes", "y", "churned", "t"})
FALSE_WORDS = frozenset({"0", "false", "no", "n", "retained", "f"})


class BacktestError(ValueError):
    """A history that cannot be backtested: unreadable, too small, or dated after its own outcome."""


@dataclass(frozen=True)
class HistoryRow:
    """One account snapshot: its signals as of a date, and whether (and when) the account churned."""

    line: int
    account_id: str
    as_of: date
    churned: bool
    outcome_date: date | None
    arr: float
    signals: dict[str, Any]


@dataclass(frozen=True)
class RowProblem:
    """A history row that was left out, with its line (or item number for a JSON array) and why."""

    line: int
    message: str


@dataclass
class History:
    """The usable rows of a history file and the problems of the rows left out."""

    rows: list[HistoryRow] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)


def load_history(
    path: str | Path,
    *,
    outcome_col: str,
    as_of_col: str,
    outcome_date_col: str | None = "outcome_date",
    arr_col: str = "arr",
    start_col: str | None = "start_date",
) -> History:
    """Read a CSV, JSON (array of objects) or JSONL history file; bad rows are reported by line, not fatal.

    Args:
        path: The file; its suffix (.csv, .json, .jsonl/.ndjson) picks the format.
        outcome_col: Column saying whether the account churned (true/false, 1/0, yes/no).
        as_of_col: Column with the date the row's signals were observed.
        outcome_date_col: Optional column with the date of the outcome (churn or renewal).
        arr_col: Column with the account's ARR (missing counts as 0).
        start_col: Optional column with the account's start date, giving the `tenure_days` signal.

    Raises:
        BacktestError: The file cannot be read, or its format is unknown or not an array/lines of objects.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise BacktestError(f"{path}: cannot read the file: {error.strerror or error}") from None
    return history_rows(
        _records(text, path.suffix.lower(), str(path)),
        outcome_col=outcome_col,
        as_of_col=as_of_col,
        outcome_date_col=outcome_date_col,
        arr_col=arr_col,
        start_col=start_col,
    )


def history_rows(
    records: Iterator[tuple[int, Any]] | Sequence[Mapping[str, Any]],
    *,
    outcome_col: str,
    as_of_col: str,
    outcome_date_col: str | None = "outcome_date",
    arr_col: str = "arr",
    start_col: str | None = "start_date",
) -> History:
    """Validate records (plain dicts, or (line, record) pairs) into history rows; see `load_history`."""
    numbered = records if isinstance(records, Iterator) else enumerate(records, start=1)
    history = History()
    columns = _Columns(outcome_col, as_of_col, outcome_date_col, arr_col, start_col)
    for line, record in numbered:
        try:
            history.rows.append(_row(line, record, columns))
        except ValueError as error:
            history.problems.append(RowProblem(line=line, message=str(error)))
    return history


@dataclass(frozen=True)
class _Columns:
    outcome: str
    as_of: str
    outcome_date: str | None
    arr: str
    start: str | None


def _row(line: int, record: Any, columns: _Columns) -> HistoryRow:
    if isinstance(record, str):
        raise ValueError(record)
    if not isinstance(record, Mapping):
        raise ValueError(f"expected an object, got {type(record).__name__}")
    values = {key: value for key, value in record.items() if value is not None and value != ""}
    account_id = str(values.get("account_id", "")).strip()
    if not account_id:
        raise ValueError("missing account_id")
    as_of = _date(values.get(columns.as_of), columns.as_of)
    if as_of is None:
        raise ValueError(f"missing {columns.as_of}")
    arr = as_number(values.get(columns.arr, 0))
    if arr is None or arr < 0:
        raise ValueError(f"{columns.arr}={values.get(columns.arr)!r} is not a non-negative number")
    return HistoryRow(
        line=line,
        account_id=account_id,
        as_of=as_of,
        churned=_outcome(values.get(columns.outcome), columns.outcome),
        outcome_date=_date(values.get(columns.outcome_date), columns.outcome_date) if columns.outcome_date else None,
        arr=arr,
        signals=_signals(values, as_of, columns.start),
    )


def _signals(values: dict[str, Any], as_of: date, start_col: str | None) -> dict[str, Any]:
    """The record's values with its signal fields validated and `days_to_renewal`/`tenure_days` derived."""
    moment = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)
    raw = {name: values[name] for name in SIGNAL_FIELDS if name in values}
    if "days_to_renewal" not in raw and "contract_end_date" in values:
        try:
            raw["days_to_renewal"] = days_until(values["contract_end_date"], now=moment, tz=ZoneInfo("UTC"))
        except (TypeError, ValueError):
            raise ValueError(f"contract_end_date={values['contract_end_date']!r} is not a valid ISO date") from None
    try:
        signals = OPTIONAL_SIGNALS.model_validate(raw).model_dump(exclude_none=True)
    except ValidationError as error:
        raise ValueError("; ".join(describe_validation_error(CSMHealthSignals, error))) from None
    if start_col and start_col in values and "tenure_days" not in values:
        try:
            signals["tenure_days"] = tenure_days(values[start_col], as_of)
        except (TypeError, ValueError):
            raise ValueError(f"{start_col}={values[start_col]!r} is not a valid ISO date") from None
    return {**values, **signals}


def _date(value: Any, column: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text).date()
    except ValueError:
        raise ValueError(f"{column}={value!r} is not an ISO date") from None


def _outcome(value: Any, column: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if value is not None else ""
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError(f"{column}={value!r} is not an outcome (true/false, 1/0, yes/no)")


def _records(text: str, suffix: str, source: str) -> Iterator[tuple[int, Any]]:
    if suffix == ".csv":
        return _csv_records(text)
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl_records(text)
    if suffix == ".json":
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise BacktestError(f"{source}: line {error.lineno}: invalid JSON: {error.msg}") from None
        if not isinstance(items, list):
            raise BacktestError(f"{source}: a JSON history must be an array of objects")
        return enumerate(items, start=1)
    raise BacktestError(f"{source}: unknown history format {suffix or '(none)'}; use .csv, .json or .jsonl")


def _csv_records(text: str) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    for record in reader:
        if None in record:
            yield reader.line_num, "unreadable CSV row: more cells than the header has columns"
        else:
            yield reader.line_num, {key.strip(): _cell(value) for key, value in record.items()}


def _cell(value: str | None) -> Any:
    text = (value or "").strip()
    if text[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text or None


def _jsonl_records(text: str) -> Iterator[tuple[int, Any]]:
    for line, content in enumerate(text.splitlines(), start=1):
        if content.strip():
            try:
                yield line, json.loads(content)
            except json.JSONDecodeError as error:
                yield line, f"invalid JSON: {error.msg} (column {error.colno})"
