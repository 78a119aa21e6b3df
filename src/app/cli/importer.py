"""`csm import FILE`: read account records from CSV, JSON, JSON Lines or a book file, validate each, upsert.

Every row is checked with the same parsers a scan uses (`parse_account` for identity and detail,
`signals_from_record` for the health signals): a good row in one validation of both models at once, a row with
a problem again by each, so the problems are named in their words. A row the store would refuse (a status longer
than its column) is found before anything is written, by the store's own check, so `--dry-run` reports it too.
A bad row is reported with its line number and why (the field and the value) and never stops the import; bytes
that are not UTF-8 make only their own row bad. For an account id on several rows the last good row wins: a bad
row never replaces a good one, even a later bad row (a bad record never loses good data).
The file is read as a stream and good rows are upserted in batches, so memory stays flat in the file size.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Annotated, Any, NotRequired, Required  # pydantic's TypedDicts on 3.11
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, with_config
from pydantic.fields import FieldInfo
from pydantic_core import PydanticSerializationError, to_json, to_jsonable_python
from rich.console import Console
from typing_extensions import TypedDict

from src.app.analysis.signals import AccountDataError, days_until, parse_account, signals_from_record
from src.app.cli.import_readers import (
    FileFormat,
    ImportFileError,
    RowProblem,
    printable,
    read_rows,
)
from src.app.scan.heap import older_objects_left_alone
from src.app.schemas import AccountRecord, CSMHealthSignals, TicketSentiment
from src.app.tools.store import CSMStore
from src.app.tools.store.sql_tables import SerialisedRecord, checked_account_text

__all__ = ["ImportFileError", "ImportReport", "RowProblem", "import_accounts", "run_import"]

_FORMATS: dict[str, FileFormat] = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_SURROGATE = re.compile("[\udc80-\udcff]")
"""Lone surrogates: how bytes that were not UTF-8 look after reading with `surrogateescape`."""
UPSERT_BATCH = 2000
"""Good rows written per store call (the last good row wins for an account id repeated in the file)."""

_Good = tuple[int, int | None, dict[str, Any]]
"""A validated row waiting in a batch: (line, item, record)."""

Progress = Callable[[int, int, int], None]
"""Called after each batch with (rows read, bytes read, file size)."""


class ImportReport(BaseModel):
    """What an import read, what it wrote and which rows it rejected."""

    file: str
    format: FileFormat
    rows: int = 0
    imported: int = 0
    dry_run: bool = False
    repeated: int = 0
    """Good rows whose account id an earlier row of the file already had (the last row wins)."""
    account_ids: list[str] = Field(default_factory=list)
    errors: list[RowProblem] = Field(default_factory=list)


def file_format(path: Path) -> FileFormat:
    """The format named by the file's extension, or ImportFileError listing the supported ones."""
    found = _FORMATS.get(path.suffix.lower())
    if found is None:
        raise ImportFileError(f"Cannot import {path.name!r}: use a {', '.join(_FORMATS)} file")
    return found


def validate_row(
    line: int, record: Mapping[str, Any], *, now: datetime, tz: ZoneInfo, item: int | None = None
) -> dict[str, Any] | RowProblem:
    """The row as a typed account record ("12" becomes 12), or the problem naming each bad field and value.

    A good row comes back with its JSON text (`SerialisedRecord`), made once here: the store writes that.
    """
    typed = _typed_at_once(record, now=now, tz=tz)
    if typed is not None:
        row = SerialisedRecord(record, "")
        row.update(typed)  # typed holds keys of the record only: its order, the typed values
        row.json = _plain_json(row, record) or ""
        if row.json:
            return row
    problems = _oddities(record)
    if problems:
        typed = None
    elif typed is None:
        typed, problems = _typed_by_parts(record, now=now, tz=tz)
    if typed is None or problems:
        raw_id = record.get("account_id")
        account_id = printable(raw_id) if isinstance(raw_id, str) else None
        return RowProblem(line=line, item=item, account_id=account_id, message="; ".join(problems))
    return {**record, **typed}  # typed holds keys of the record only: its order, the typed values


class _TicketFields(TypedDict, total=False):
    """A `Ticket`'s fields as validated, only those given: what `model_dump(exclude_unset=True)` of it holds."""

    subject: str
    body: str
    status: str
    sentiment: TicketSentiment


class _ImportRow(AccountRecord, CSMHealthSignals):
    """An account's identity, detail and signals in one model: one validation for a good row (`_given_fields`).

    Its validated fields are JSON values as they are (text, numbers, lists and maps of them; tickets as
    `_TicketFields`, not models) except `contract_end_date`, which `_typed_at_once` serialises: no dump of the model.
    """

    model_config = ConfigDict(extra="ignore")

    tickets: list[_TicketFields] = Field(default_factory=list)  # type: ignore[assignment]  # dicts, not models


@cache
def _given_fields() -> TypeAdapter[dict[str, Any]]:
    """`_ImportRow`'s fields and constraints as a TypedDict: validating returns the given fields typed, a dict.

    That is `model_dump(exclude_unset=True)` of the model without building the model (~3 us less a row).
    """
    fields = {  # the type and its constraints, not the default: a missing field stays missing
        name: (Required if field.is_required() else NotRequired)[_constrained(field)]
        for name, field in _ImportRow.model_fields.items()
    }
    given = with_config(ConfigDict(extra="ignore"))(TypedDict("_GivenFields", fields))  # type: ignore[operator]
    return TypeAdapter(given)


def _constrained(field: FieldInfo) -> Any:
    return Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation


def _typed_at_once(record: Mapping[str, Any], *, now: datetime, tz: ZoneInfo) -> dict[str, Any] | None:
    """The row's fields typed as `_typed_by_parts` types them, or None when some field is bad (that names it)."""
    end, days = record.get("contract_end_date"), None
    if end is not None and record.get("days_to_renewal") is None:
        try:  # what `signals_from_record` derives, and refuses when the date is bad
            days = _days_until_text(end, now, tz) if isinstance(end, str) else days_until(end, now=now, tz=tz)
        except (TypeError, ValueError):
            return None
    try:
        typed = _given_fields().validate_python(record)
    except ValidationError:
        return None
    if isinstance(typed.get("contract_end_date"), date):  # a datetime too; as `model_dump(mode="json")` writes it
        typed["contract_end_date"] = to_jsonable_python(typed["contract_end_date"])
    if days is not None and "days_to_renewal" in record:  # an explicit null is replaced by the derived days
        typed["days_to_renewal"] = days
    return typed


@lru_cache(maxsize=4096)
def _days_until_text(end: str, now: datetime, tz: ZoneInfo) -> int | None:
    """`days_until` of a date written as text, remembered: a book repeats a few hundred contract end dates."""
    return days_until(end, now=now, tz=tz)


def _typed_by_parts(record: Mapping[str, Any], *, now: datetime, tz: ZoneInfo) -> tuple[dict[str, Any], list[str]]:
    """The row's fields typed by the checks a scan makes, and every problem they name (in their words)."""
    problems: list[str] = []
    typed: dict[str, Any] = {}
    for check in (lambda: parse_account(record), lambda: signals_from_record(record, now=now, tz=tz)):
        try:
            typed |= check().model_dump(mode="json", exclude_unset=True)
        except AccountDataError as error:
            problems += [p for p in error.problems if p not in problems]
    return {key: value for key, value in typed.items() if key in record}, problems


def _plain_json(row: Mapping[str, Any], record: Mapping[str, Any]) -> str | None:
    """The typed row's JSON text when it shows that the record holds no oddity (`_oddities`), else None.

    The typed row holds the record's every key and string, and its numbers but those typing refused, so a row
    with no NUL, surrogate or non-finite number stands for a record with none; except a ticket's keys other
    than `_TicketFields`' (typing drops them), so a record whose tickets typing changed is left to `_oddities`.
    """
    tickets = record.get("tickets")
    if tickets and row["tickets"] != tickets:  # ticket fields are text: equal when typing dropped no key
        return None
    try:
        dumped = to_json(row, inf_nan_mode="constants").decode()
    except PydanticSerializationError:
        return None
    if "\\u0000" in dumped or "NaN" in dumped or "Infinity" in dumped:  # in text: faster than in bytes
        return None
    return dumped


def _oddities(record: Mapping[str, Any]) -> list[str]:
    """What no store can keep: bytes that were not UTF-8, NUL characters, non-finite numbers, unpaired surrogates."""
    try:  # one serialisation of the whole row finds any oddity; lone surrogates cannot be serialised at all
        dumped = to_json(record, inf_nan_mode="constants")
    except PydanticSerializationError:
        dumped = None
    undecodable = _undecodable_fields(record) if dumped is None else []
    if undecodable:
        return [f"not valid UTF-8 in {', '.join(undecodable)}"]
    if dumped is not None and not (b"\\u0000" in dumped or b"NaN" in dumped or b"Infinity" in dumped):
        return []  # no NUL character and no non-finite number, as they look in JSON: nothing to walk
    unpaired = _unpaired_fields(record) if dumped is None else []
    return _unstorable_values(record) or ([f"unpaired UTF-16 surrogate in {', '.join(unpaired)}"] if unpaired else [])


async def import_accounts(
    store: CSMStore,
    path: Path,
    *,
    now: datetime,
    tz: ZoneInfo,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Validate every row of `path` and upsert the good ones in batches.

    For a repeated account id the last good row wins; a row that is bad (for the parsers or for the store's
    columns) is reported by its line and leaves the id's earlier good row to be written. `dry_run`: the same
    checks and report, nothing written.
    """
    fmt = file_format(path)
    try:
        handle = path.open("rb")
        size = path.stat().st_size
    except OSError as error:
        raise ImportFileError(f"Cannot read {str(path)!r}: {error.strerror or error}") from None
    report = ImportReport(file=str(path), format=fmt, dry_run=dry_run)
    imported: set[str] = set()
    batch: dict[str, _Good] = {}
    rows = 0  # counted here, not on the report: a pydantic model's attribute costs ~1 us to set
    with handle, older_objects_left_alone():
        for line, item, row in read_rows(handle, fmt):
            rows += 1
            checked = row if isinstance(row, RowProblem) else validate_row(line, row, now=now, tz=tz, item=item)
            if not isinstance(checked, RowProblem):
                checked = _storable(line, item, checked)
            if isinstance(checked, RowProblem):
                report.errors.append(checked)
                continue
            account_id = str(checked["account_id"])
            if batch.pop(account_id, None) is not None or account_id in imported:  # re-inserted: the last row wins
                report.repeated += 1
            batch[account_id] = (line, item, checked)
            if len(batch) >= UPSERT_BATCH:
                report.errors += await _flush(store, batch, imported, dry_run)
                if progress is not None:
                    progress(rows, handle.tell(), size)
        report.errors += await _flush(store, batch, imported, dry_run)
    report.rows = rows
    report.errors.sort(key=lambda problem: problem.line)
    report.account_ids = sorted(imported)
    report.imported = 0 if dry_run else len(imported)
    return report


def _storable(line: int, item: int | None, record: dict[str, Any]) -> dict[str, Any] | RowProblem:
    """The record, or the problem when the store would refuse it (text longer than its column), by its own check."""
    try:
        checked_account_text(record)
    except ValueError as error:
        return _not_stored(line, item, str(record["account_id"]), error)
    return record


def _not_stored(line: int, item: int | None, account_id: str, error: ValueError) -> RowProblem:
    return RowProblem(line=line, item=item, account_id=printable(account_id), message=f"not stored: {error}")


async def _flush(store: CSMStore, batch: dict[str, _Good], done: set[str], dry_run: bool) -> list[RowProblem]:
    """Upsert the batch, and report the rows the store refused (the others are written)."""
    refused = [] if dry_run or not batch else await _upsert(store, list(batch.items()))
    done.update(account_id for account_id in batch if account_id not in {account_id for account_id, _ in refused})
    batch.clear()
    return [problem for _, problem in refused]


async def _upsert(store: CSMStore, rows: list[tuple[str, _Good]]) -> list[tuple[str, RowProblem]]:
    """Write the rows; when the store refuses them anyway, halve until each refused row is found.

    `_storable` has checked every row as the store does, so this is a safety net for a check added to the store
    later; a row refused here does lose the earlier good row its own row replaced in the batch.
    """
    try:
        await store.upsert_accounts([record for _, (_, _, record) in rows])
    except ValueError as error:
        if len(rows) > 1:
            return await _upsert(store, rows[: len(rows) // 2]) + await _upsert(store, rows[len(rows) // 2 :])
        [(account_id, (line, item, _))] = rows
        return [(account_id, _not_stored(line, item, account_id, error))]
    return []


def _strings(value: Any, name: str = "") -> Iterator[tuple[str, str]]:
    """(field, text) for every string in a record, keys included, nested values named by their top field."""
    if isinstance(value, str):
        yield name, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            field = name or str(key)
            yield from _strings(str(key), field)
            yield from _strings(item, field)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, name)


def _undecodable_fields(record: Mapping[str, Any]) -> list[str]:
    """Fields holding bytes that were not UTF-8."""
    return sorted({printable(name) for name, value in _strings(record) if _SURROGATE.search(value)})


def _unpaired_fields(record: Mapping[str, Any]) -> list[str]:
    r"""Fields holding a surrogate that no UTF-8 text can hold (a JSON escape such as \ud800 left unpaired)."""
    return sorted({printable(name) for name, value in _strings(record) if not _encodes(value)})


def _encodes(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _unstorable_values(record: Mapping[str, Any]) -> list[str]:
    """Values no store can keep: NUL characters (PostgreSQL refuses them) and non-finite numbers (not JSON)."""
    problems = {f"{printable(name)} contains a NUL character" for name, text in _strings(record) if "\0" in text}
    problems |= {f"{printable(name)}={number} is not a finite number" for name, number in _numbers(record)}
    return sorted(problems)


def _numbers(value: Any, name: str = "") -> Iterator[tuple[str, float]]:
    """(field, number) for every non-finite float in a record, named by its top field."""
    if isinstance(value, float) and not math.isfinite(value):
        yield name, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _numbers(item, name or str(key))
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item, name)


async def run_import(path: Path, *, data_dir: Path | None, dry_run: bool, quiet: bool) -> ImportReport:
    """`csm import`: import into the configured store and print what was imported and what was rejected."""
    from src.app.cli.render import rows_progress
    from src.app.config import settings_for
    from src.app.tools.store.sql import SQLStore

    settings = settings_for(data_dir)
    if settings.notion_token is not None:
        raise ImportFileError(
            f"Accounts are read from the Notion database {settings.notion_accounts_database_id}: add the rows there. "
            "`csm import` writes the local store, which no scan reads while CSM_NOTION_TOKEN is set"
        )
    console = Console(quiet=quiet)
    store = SQLStore(settings.resolved_database_url)
    size = path.stat().st_size if path.is_file() else 0
    try:
        with rows_progress(console, f"Importing {path.name}", size) as update:
            now = datetime.now(settings.tz)
            report = await import_accounts(store, path, now=now, tz=settings.tz, dry_run=dry_run, progress=update)
            update(report.rows, size, size)
    finally:
        await store.aclose()
    _render(console, report)
    return report


def _render(console: Console, report: ImportReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    if console.quiet:  # rich would still lay out every rejected row's table line (~2 s for 1,000 of them)
        return
    if report.errors:
        table = Table(title=f"Rejected rows ({len(report.errors)})")
        for column in ("line", "account", "problem"):
            table.add_column(column)
        for problem in report.errors:
            where = str(problem.line) if problem.item is None else f"{problem.line} (item [{problem.item}])"
            table.add_row(where, escape(problem.account_id or "-"), escape(problem.message))
        console.print(table)
    verb = "Valid (dry run, nothing written)" if report.dry_run else "Imported"
    console.print(f"{verb}: {len(report.account_ids)} of {report.rows} rows; rejected: {len(report.errors)}.")
    if report.repeated:
        console.print(f"{report.repeated} rows repeated an account id seen earlier in the file; the last one was kept.")
